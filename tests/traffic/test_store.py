from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import NotFoundError, StoreError
from cadre.traffic import Feedback, RetentionSpec, ShadowRecord, TrafficRecord, TrafficStore, open_store


def test_round_trip_and_filter_by_model(tmp_path: Path) -> None:
    with TrafficStore(tmp_path / "t.db", create=True) as store:
        store.insert(
            [
                TrafficRecord(
                    "r1", "chat", "auto", "generalist", [{"role": "user", "content": "hé"}], "a", score=0.5
                ),
                TrafficRecord(
                    "r2", "complete", "support", "support", [{"role": "user", "content": "b"}], "c"
                ),
            ]
        )
    with open_store(tmp_path / "t.db") as store:
        rows = store.records(models=["generalist"])
        assert store.count() == 2
    assert len(rows) == 1
    assert (rows[0].request_id, rows[0].prompt, rows[0].score, rows[0].fallback) == ("r1", "hé", 0.5, False)


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


def test_shadow_pairs_feedback_and_retention(tmp_path: Path) -> None:
    msgs = [{"role": "user", "content": "q"}]
    with TrafficStore(tmp_path / "t.db", create=True) as store:
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
