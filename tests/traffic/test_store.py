from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import NotFoundError, StoreError
from cadre.traffic import TrafficRecord, TrafficStore, open_store


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
