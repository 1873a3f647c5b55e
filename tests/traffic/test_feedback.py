from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cadre.errors import DataError
from cadre.traffic import TrafficStore, import_feedback, open_store, read_feedback

from .conftest import stored_text


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_labels_are_redacted_before_they_are_stored(tmp_path: Path, make_store: Callable[[str], str]) -> None:
    db = make_store("t")
    TrafficStore(db, create=True).close()
    src = _write(
        tmp_path / "labels.jsonl",
        [
            {"response_id": "chatcmpl-1", "label": "write to jane.doe@example.com"},
            {"response_id": "chatcmpl-2", "score": 0},
            {"response_id": "chatcmpl-3", "label": {"total": 12.5}, "score": 1},
        ],
    )
    assert import_feedback(db, src) == 3
    with open_store(db) as store:
        fb = store.feedback()
    assert fb["chatcmpl-1"].label == "write to [EMAIL]" and fb["chatcmpl-1"].redactions == {"email": 1}
    assert fb["chatcmpl-1"].source == "labels.jsonl"
    assert (fb["chatcmpl-2"].label, fb["chatcmpl-2"].score) == (None, 0.0)
    assert json.loads(fb["chatcmpl-3"].label or "") == {"total": 12.5}
    assert b"[EMAIL]" in stored_text(db) and b"jane.doe" not in stored_text(db)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"label": "a"}, "expected"),
        ({"response_id": "x"}, "a label, a score"),
        ({"response_id": "x", "score": 2}, "from 0 to 1"),
        ({"response_id": "x", "score": True}, "from 0 to 1"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path: Path, row: dict[str, object], message: str) -> None:
    src = _write(tmp_path / "f.jsonl", [{"response_id": "ok", "score": 1}, row])
    with pytest.raises(DataError, match=rf"f.jsonl:2: .*{message}"):
        read_feedback(src)
