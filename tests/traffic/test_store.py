from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cadre.errors import NotFoundError, StoreError
from cadre.traffic import Feedback, RetentionSpec, ShadowRecord, TrafficRecord, TrafficStore, open_store


def test_round_trip_and_filter_by_model(make_store: Callable[[str], str]) -> None:
    db = make_store("t")
    with TrafficStore(db, create=True) as store:
        store.insert(
            [
                TrafficRecord(
                    "r1",
                    "chat",
                    "auto",
                    "generalist",
                    [{"role": "user", "content": "hé"}],
                    "a",
                    score=0.5,
                    ts=1764690000.123456,
                ),
                TrafficRecord(
                    "r2", "complete", "support", "support", [{"role": "user", "content": "b"}], "c"
                ),
            ]
        )
    with open_store(db) as store:
        rows = store.records(models=["generalist"])
        assert store.count() == 2
    assert len(rows) == 1
    assert (rows[0].request_id, rows[0].prompt, rows[0].score, rows[0].fallback) == ("r1", "hé", 0.5, False)
    assert rows[0].ts == 1764690000.123456  # a double on both backends (PostgreSQL's REAL would round it)


def test_missing_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="turn capture on"):
        open_store(tmp_path / "none.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable traffic store"):
        open_store(junk)


def test_a_version_1_store_is_migrated_and_keeps_its_records(tmp_path: Path) -> None:
    import sqlite3

    from cadre.traffic.store import _SCHEMA_V1, SCHEMA_VERSION

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript(_SCHEMA_V1)
    con.execute(
        "INSERT INTO requests (request_id, ts, endpoint, requested, model, messages, response) "
        "VALUES ('r1', 1.0, 'chat', 'auto', 'generalist', '[{\"role\": \"user\", \"content\": \"hi\"}]', 'yo')"
    )
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with open_store(db) as store:
        assert [r.prompt for r in store.records()] == ["hi"]
        store.insert_feedback([Feedback("r1", label="yo")])
        assert store.feedback()["r1"].label == "yo" and store.shadow_pairs() == []
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this cadre"):
        open_store(db)


def test_shadow_pairs_feedback_and_retention(make_store: Callable[[str], str]) -> None:
    msgs = [{"role": "user", "content": "q"}]
    with TrafficStore(make_store("t"), create=True) as store:
        store.insert(
            [
                TrafficRecord(f"r{i}", "chat", "auto", "generalist", msgs, f"a{i}", ts=100.0 + i)
                for i in range(3)
            ]
        )
        store.insert_shadow(
            [
                ShadowRecord("r0", "inv", "a0"),
                ShadowRecord("r2", "inv", "", error="TimeoutError: "),
                ShadowRecord("r1", "other", "x"),
            ]
        )
        store.insert_feedback(
            [
                Feedback("r0", label="first"),
                Feedback("r0", score=0.0),
                Feedback("r0", label="second"),
                Feedback("r9", score=1.0),
            ]
        )
        pairs = store.shadow_pairs("inv")
        assert [(r.request_id, s.response, s.error) for r, s in pairs] == [
            ("r0", "a0", None),
            ("r2", "", "TimeoutError: "),
        ]
        assert store.shadowed_specialists() == ["inv", "other"]
        fb = store.feedback()["r0"]
        assert (fb.label, fb.score) == ("second", 0.0)  # the latest of each, merged
        assert store.prune(RetentionSpec(max_rows=1, max_age_days=None)) == 2  # r0, r1 go
        assert [r.request_id for r, _ in store.shadow_pairs()] == ["r2"]
        assert set(store.feedback()) == set()  # r0's feedback went with it; r9 never had a request


def test_tasks_are_saved_replaced_and_pruned_with_their_records(make_store: Callable[[str], str]) -> None:
    msgs = [{"role": "user", "content": "q"}]
    with TrafficStore(make_store("t"), create=True) as store:
        store.insert([TrafficRecord(f"r{i}", "chat", "auto", "generalist", msgs, f"a{i}") for i in range(4)])
        ids = [r.id for r in store.records()]
        assert all(isinstance(i, int) for i in ids) and ids == sorted(ids)
        store.save_tasks([(int(i or 0), n % 2) for n, i in enumerate(ids)])
        assert store.task_ids() == [0, 1]
        assert [r.request_id for r in store.task_records(1)] == ["r1", "r3"]
        store.save_tasks([(int(i or 0), 5) for i in ids])  # a new discovery replaces the old one
        assert store.task_ids() == [5]
        assert store.prune(RetentionSpec(max_rows=1, max_age_days=None)) == 3
        assert [r.request_id for r in store.task_records(5)] == ["r3"]
        assert [r.request_id for r in store.records(limit=1)] == ["r3"]


def test_a_postgres_store_is_tables_with_a_prefix_of_their_own(
    pg_dsn: str, pg_store_url: Callable[[str], str]
) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    one, two = pg_store_url("tp_one_"), pg_store_url("tp_two_")
    with pytest.raises(NotFoundError, match="turn capture on"):
        open_store(one)
    msgs = [{"role": "user", "content": "q"}]
    with TrafficStore(one, create=True) as a, TrafficStore(two, create=True) as b:
        a.insert([TrafficRecord("r1", "chat", "auto", "generalist", msgs, "a")])
        b.insert([TrafficRecord(f"r{i}", "chat", "auto", "generalist", msgs, "b") for i in range(3)])
        assert (a.count(), b.count()) == (1, 3)
        info = conninfo_to_dict(pg_dsn)
        assert a.path is None
        assert a.name == f"postgresql://cadre@127.0.0.1:{info['port']}/postgres?table_prefix=tp_one_"
    with psycopg.connect(pg_dsn) as con:
        rows = con.execute("SELECT tablename FROM pg_tables WHERE starts_with(tablename, 'tp_one_')")
        tables = sorted(r[0] for r in rows)
    assert tables == [
        f"tp_one_{t}" for t in ("feedback", "requests", "schema_version", "shadow", "task_members")
    ]


def test_a_version_1_postgres_store_is_migrated_and_a_newer_one_refused(
    pg_dsn: str, pg_store_url: Callable[[str], str]
) -> None:
    import psycopg

    from cadre.traffic.backends import postgres_ddl
    from cadre.traffic.store import _SCHEMA_V1, SCHEMA_VERSION

    with psycopg.connect(pg_dsn, autocommit=True) as con:
        for statement in postgres_ddl(_SCHEMA_V1, "tp_old_"):
            con.execute(statement)  # type: ignore[call-overload]
        con.execute(
            "INSERT INTO tp_old_requests (request_id, ts, endpoint, requested, model, messages, response) "
            "VALUES ('r1', 1.0, 'chat', 'auto', 'generalist', '[{\"role\": \"user\", \"content\": \"hi\"}]', 'yo')"
        )
        con.execute("CREATE TABLE tp_old_schema_version (version integer NOT NULL)")
        con.execute("INSERT INTO tp_old_schema_version VALUES (1)")
    url = pg_store_url("tp_old_")
    with open_store(url) as store:
        assert [r.prompt for r in store.records()] == ["hi"]
        assert store.records()[0].tool_calls == []  # the column version 2 added, with its default
        store.insert_feedback([Feedback("r1", label="yo")])
        assert store.feedback()["r1"].label == "yo" and store.shadow_pairs() == []
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        assert con.execute("SELECT version FROM tp_old_schema_version").fetchone() == (SCHEMA_VERSION,)
        con.execute("UPDATE tp_old_schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this cadre"):
        open_store(url)


def test_postgres_errors_name_the_server_never_the_password(
    pg_dsn: str, unused_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadre.errors import ConfigError

    port = unused_port()
    with pytest.raises(
        StoreError, match=rf"cannot connect .* postgresql://cadre@127.0.0.1:{port}/shop"
    ) as err:
        open_store(f"postgresql://cadre:s3cret-pw@127.0.0.1:{port}/shop?connect_timeout=5")
    assert "s3cret-pw" not in str(err.value) and "PGPASSWORD" in str(err.value)
    with pytest.raises(ConfigError, match="table_prefix 'Bad;drop'"):
        open_store("postgresql://cadre@127.0.0.1/shop?table_prefix=Bad;drop")
    monkeypatch.delenv("CADRE_TEST_TRAFFIC_DSN", raising=False)
    with pytest.raises(ConfigError, match="CADRE_TEST_TRAFFIC_DSN is not set"):
        open_store("env:CADRE_TEST_TRAFFIC_DSN")
    monkeypatch.setenv(
        "CADRE_TEST_TRAFFIC_DSN", pg_dsn
    )  # libpq's key=value form, as the pgvector store takes it
    with TrafficStore("env:CADRE_TEST_TRAFFIC_DSN", create=True) as store:
        assert store.count() == 0 and store.name.endswith("/postgres (from $CADRE_TEST_TRAFFIC_DSN)")
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match="needs psycopg"):
        open_store("env:CADRE_TEST_TRAFFIC_DSN")
