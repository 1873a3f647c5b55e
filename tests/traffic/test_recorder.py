from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cadre.traffic import CaptureSpec, Recorder, TrafficRecord, TrafficStore, open_store
from cadre.traffic.config import RetentionSpec
from cadre.traffic.location import is_postgres

from .conftest import disk_bytes, stored_text
from .pii_cases import PII


def record(
    text: str, response: str = "ok", *, model: str = "generalist", ts: float | None = None
) -> TrafficRecord:
    r = TrafficRecord(
        request_id=f"chatcmpl-{abs(hash(text)) % 10**8}",
        endpoint="chat",
        requested="auto",
        model=model,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        response=response,
        prompt_tokens=10,
        completion_tokens=3,
    )
    if ts is not None:
        r.ts = ts
    return r


def test_nothing_unredacted_reaches_disk(make_store: Callable[[str], str]) -> None:
    db = make_store("traffic")
    rec = Recorder(CaptureSpec(store=db), db)
    rec.start()
    for kind, value in PII:
        # in the request and in the answer, as plain text and inside JSON
        assert rec.offer(record(f"my {kind} is {value}", response=f'{{"{kind}": "{value}"}}'))
    assert rec.flush()
    # SQLite: the running writer's WAL and the file, then again after the checkpoint at close; PostgreSQL: every
    # text column of every table, while running and after close
    for stage in ("running", "closed"):
        data = stored_text(db)
        assert b"[EMAIL]" in data, stage  # the scan sees the stored text
        for _, value in PII:
            assert value.encode() not in data, (stage, value)
        if stage == "running":
            rec.close()
    with open_store(db) as store:
        rows = store.records()
    assert len(rows) == len(PII)
    for (kind, _), row in zip(PII, rows, strict=True):
        assert row.prompt == f"my {kind} is [{kind.upper()}]"
        assert row.response == f'{{"{kind}": "[{kind.upper()}]"}}'
        assert row.redactions == {kind: 2}
    stats = rec.stats()
    assert stats["written"] == len(PII) and stats["dropped"] == 0
    assert sum(stats["redactions"].values()) == 2 * len(PII)


def test_a_full_queue_drops_and_counts_never_waits(
    make_store: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_insert = TrafficStore.insert

    def slow_insert(self: TrafficStore, records: object) -> int:
        release.wait(10)
        return real_insert(self, records)  # type: ignore[arg-type]

    monkeypatch.setattr(TrafficStore, "insert", slow_insert)
    db = make_store("t")
    rec = Recorder(CaptureSpec(queue_size=4), db)
    rec.start()
    assert rec.offer(record("first"))  # taken by the writer, which then blocks in insert
    deadline = time.monotonic() + 5
    while rec.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(4):
        assert rec.offer(record(f"queued {i}"))
    started = time.perf_counter()
    results = [rec.offer(record(f"over {i}")) for i in range(100)]
    elapsed = time.perf_counter() - started
    assert results == [False] * 100
    assert elapsed < 0.5  # 100 refused offers: no waiting on the writer
    assert rec.stats()["dropped"] == 100
    release.set()
    rec.close()
    with open_store(db) as store:
        assert store.count() == 5


def test_models_and_sampling(tmp_path: Path) -> None:
    rec = Recorder(CaptureSpec(models=["generalist"], sample_rate=0.25), tmp_path / "t.db", seed=7)
    assert not rec.wants("support")
    wanted = sum(rec.wants("generalist") for _ in range(4000))
    assert 850 < wanted < 1150
    assert rec.stats()["sampled_out"] == 4000 - wanted
    assert Recorder(CaptureSpec(models=["*"]), tmp_path / "u.db").wants("support")
    assert not Recorder(CaptureSpec(enabled=False), tmp_path / "v.db").wants("generalist")


def test_cost_from_prices(tmp_path: Path) -> None:
    spec = CaptureSpec(prices={"generalist": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}})
    rec = Recorder(spec, tmp_path / "t.db")
    assert rec.cost("generalist", 1_000_000, 100_000) == pytest.approx(3.5)
    assert rec.cost("support", 1000, 1000) == 0.0


def test_retention_keeps_the_newest_and_overwrites_what_it_deletes(make_store: Callable[[str], str]) -> None:
    db = make_store("t")
    spec = CaptureSpec(retention=RetentionSpec(max_rows=5, max_age_days=1))
    rec = Recorder(spec, db)
    rec.start()
    rec.offer(record("OLD-MARKER-QZX", ts=time.time() - 3 * 86400))
    for i in range(20):
        rec.offer(record(f"request number {i:02d}"))
    rec.close()
    with open_store(db) as store:
        assert [r.prompt for r in store.records()] == [f"request number {i:02d}" for i in range(15, 20)]
    if not is_postgres(db):
        assert b"OLD-MARKER-QZX" not in disk_bytes(db)  # secure_delete: the deleted row's bytes are gone
    assert b"OLD-MARKER-QZX" not in stored_text(db)  # PostgreSQL: deleted (VACUUM reclaims the space)
    assert rec.stats()["pruned"] == 16


def test_tool_calls_shadow_answers_and_feedback_are_redacted_too(make_store: Callable[[str], str]) -> None:
    from cadre.traffic import Feedback, ShadowRecord

    db = make_store("traffic")
    rec = Recorder(CaptureSpec(store=db), db)
    rec.start()
    r = record("send it")
    r.messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "mail", "arguments": '{"to": "a@b.io"}'},
                }
            ],
        }
    )
    r.tool_calls = [{"id": "c1", "name": "mail", "arguments": '{"to": "jane.doe@example.com"}'}]
    assert rec.offer(r)
    assert rec.offer(ShadowRecord(r.request_id, "mailer", "mail jane.doe@example.com"))
    assert rec.offer(Feedback(r.request_id, label="to jane.doe@example.com", score=1.0))
    assert rec.flush()
    rec.close()
    data = stored_text(db)
    assert b"jane.doe@example.com" not in data and b"a@b.io" not in data
    with open_store(db) as store:
        (row,) = store.records()
        ((_, shadow),) = store.shadow_pairs()
        fb = store.feedback()[r.request_id]
    assert row.tool_calls == [{"id": "c1", "name": "mail", "arguments": '{"to": "[EMAIL]"}'}]
    assert row.messages[-1]["tool_calls"][0]["function"]["arguments"] == '{"to": "[EMAIL]"}'
    assert row.redactions == {"email": 2}
    assert (shadow.response, shadow.redactions) == ("mail [EMAIL]", {"email": 1})
    assert (fb.label, fb.score) == ("to [EMAIL]", 1.0)


def test_the_writer_reconnects_when_postgresql_drops_its_connection(
    pg_dsn: str, pg_store_url: Callable[[str], str]
) -> None:
    import psycopg

    db = pg_store_url("reconnect_").replace("?", "?application_name=cadre_reconnect_test&")
    rec = Recorder(CaptureSpec(store=db), db)
    rec.start()
    assert rec.offer(record("before")) and rec.flush()
    with psycopg.connect(pg_dsn, autocommit=True) as con:  # what a server restart does to the writer
        (killed,) = con.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'cadre_reconnect_test'"
        ).fetchone() or (0,)
    assert killed == 1
    assert rec.offer(record("lost with the connection")) and rec.flush()
    assert rec.stats()["failed"] == 1
    assert rec.offer(record("after")) and rec.flush()
    rec.close()
    with open_store(db) as store:
        assert [r.prompt for r in store.records()] == ["before", "after"]
    assert rec.stats()["written"] == 2
