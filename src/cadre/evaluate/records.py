"""The files of a run directory: ``run.json`` (what was asked) and ``items.jsonl`` (one record per answer).

- ``run.json``: the task spec, the systems, the perturbations, the item ids (written first, checked on resume);
- ``items.jsonl``: one record per (system, item, perturbation, repeat), appended and flushed as it is made:
  prediction, reference, score, correct, latency, time to first token, tokens in/out, route, error, the
  concurrency it ran at, and ``reused`` (answered from a cache, e.g. the demo's replay of a greedy answer);
- ``timing.jsonl``: one line per pass of a system over its work: wall seconds, requests generated, concurrency
  (the throughput a request's cost is computed from);
- ``probe.jsonl``: when the run is concurrent, a few items answered again one at a time (the latency a lone
  user sees); the same record shape as ``items.jsonl``, not scored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadre.config import to_jsonable
from cadre.errors import DataError

__all__ = [
    "ITEMS_FILE",
    "ORIGINAL",
    "PROBE_FILE",
    "RUN_FILE",
    "TIMING_FILE",
    "RecordKey",
    "RecordWriter",
    "latest_records",
    "read_jsonl_lines",
    "read_run",
    "read_run_records",
]

RUN_FILE = "run.json"
ITEMS_FILE = "items.jsonl"
TIMING_FILE = "timing.jsonl"
PROBE_FILE = "probe.jsonl"
ORIGINAL = "original"

RecordKey = tuple[str, str, str, int]
"""(system, item id, perturbation, repeat)."""


def read_run_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record in ``items.jsonl`` (a line cut off by an interruption is ignored)."""
    return read_jsonl_lines(Path(run_dir) / ITEMS_FILE)


def read_jsonl_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a run file (missing file: none; a cut-off or corrupt line is skipped)."""
    if not path.is_file():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a partial last line from an interrupted write
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


def record_key(rec: Mapping[str, Any]) -> RecordKey:
    return (
        str(rec["system"]),
        str(rec["item_id"]),
        str(rec.get("perturbation") or ORIGINAL),
        int(rec["repeat"]),
    )


def latest_records(records: Sequence[Mapping[str, Any]]) -> dict[RecordKey, dict[str, Any]]:
    """The last record per (system, item, perturbation, repeat): a retried failure replaces the failure."""
    out: dict[RecordKey, dict[str, Any]] = {}
    for r in records:
        out[record_key(r)] = dict(r)
    return out


class RecordWriter:
    """Appends records to ``items.jsonl``, one flushed line each (a partial last line is dropped on open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_file() and path.stat().st_size > 0:
            data = path.read_bytes()
            if not data.endswith(b"\n"):  # drop a partial last line left by an interruption
                path.write_bytes(data[: data.rfind(b"\n") + 1])
        self._fh = path.open("a", encoding="utf-8")

    def write(self, rec: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(to_jsonable(dict(rec)), ensure_ascii=False, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``run.json``: task spec, systems, perturbations, item ids."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise DataError(
            f"{run_dir} is not an evaluation run directory (no {RUN_FILE}); run `cadre eval run` first"
        )
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DataError(f"{path} is corrupt; re-run the evaluation into a new --out") from None
    return meta
