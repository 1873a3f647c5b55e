"""A small manifest of finished demo steps, so a re-run reuses what is done and redoes what changed.

A step is *done* when the manifest records it with the same fingerprint (a digest of its settings and of the
steps it depends on) and every output it listed still exists. Writes are atomic (temp file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.errors import DataError

__all__ = ["Manifest", "StepRecord", "fingerprint"]

MANIFEST_FILE = "manifest.json"


def fingerprint(*parts: Any) -> str:
    """A short stable digest of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class StepRecord:
    """One step's entry: status ``done`` / ``skipped`` / ``failed``, its outputs (relative paths) and a note."""

    name: str
    fingerprint: str
    status: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    finished: str = ""


class Manifest:
    """``<out>/manifest.json``: the record of each step."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / MANIFEST_FILE
        self.steps: dict[str, StepRecord] = {}
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise DataError(
                    f"{self.path} is not valid JSON; delete it to redo every step of the demo"
                ) from None
            self.steps = {k: StepRecord(**v) for k, v in raw.get("steps", {}).items()}

    def is_done(self, name: str, fp: str) -> bool:
        """The step finished with fingerprint ``fp`` and all its outputs still exist."""
        rec = self.steps.get(name)
        return (
            rec is not None
            and rec.status == "done"
            and rec.fingerprint == fp
            and all((self.out / p).exists() for p in rec.outputs)
        )

    def get(self, name: str) -> StepRecord | None:
        return self.steps.get(name)

    def record(self, rec: StepRecord) -> None:
        rec.finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.steps[rec.name] = rec
        self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"format": 1, "steps": {k: vars(v) for k, v in self.steps.items()}}
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
