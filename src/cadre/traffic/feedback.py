"""Users' feedback from a file: JSONL lines ``{"response_id": ..., "label": ..., "score": ...}`` (``label`` the
right answer, ``score`` in [0, 1]; at least one) imported into the capture store's ``feedback`` table, redacted
first like everything the store holds. The server's ``POST /v1/feedback`` writes the same table."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

from cadre.config.jsonl import iter_jsonl
from cadre.errors import DataError
from cadre.traffic.config import RedactionSpec
from cadre.traffic.redact import Redactor
from cadre.traffic.store import Feedback, open_store

__all__ = ["import_feedback", "read_feedback"]


def read_feedback(path: str | Path) -> list[Feedback]:
    """Parse a feedback file (not redacted yet).

    Raises:
        DataError: a missing file, or a line that is not ``{"response_id", "label" and/or "score"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; write one JSON object per line: {{'response_id', 'label'}}")
    items: list[Feedback] = []
    for i, row in iter_jsonl(path):
        rid = row.get("response_id") if isinstance(row, dict) else None
        if not isinstance(rid, str) or not rid:
            raise DataError(f"{path}:{i}: expected {{'response_id': '...', 'label': '...'}} (or 'score')")
        label, score = row.get("label"), row.get("score")
        if label is not None and not isinstance(label, str):
            label = json.dumps(label, ensure_ascii=False)  # an object label (JSON extraction) as its text
        if score is not None and (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not 0 <= score <= 1
            or math.isnan(score)
        ):
            raise DataError(f"{path}:{i}: score must be a number from 0 to 1, got {score!r}")
        if label is None and score is None:
            raise DataError(f"{path}:{i}: give a label, a score, or both")
        items.append(
            Feedback(
                request_id=rid, label=label, score=None if score is None else float(score), source=path.name
            )
        )
    return items


def import_feedback(store: str | Path, path: str | Path, *, redaction: RedactionSpec | None = None) -> int:
    """Redact and add the feedback of ``path`` to ``store``; returns how many items were added.

    Raises:
        NotFoundError / StoreError: no usable store.
        DataError: a malformed file.
    """
    redactor = Redactor(redaction)
    items = []
    for item in read_feedback(path):
        counts: Counter[str] = Counter()
        label = None if item.label is None else redactor.redact(item.label, counts)
        items.append(replace(item, label=label, redactions=dict(counts)))
    with open_store(store) as db:
        return db.insert_feedback(items)
