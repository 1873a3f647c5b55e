"""The flywheel's action log: one readable line per step (discover, export, compare, promote, rollback), so a
user can see what was done to their traffic and their ecosystem, when, and with what result."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cadre.traffic.location import is_postgres

__all__ = ["ACTION_LOG", "log_action", "read_actions", "store_action_log"]

ACTION_LOG = "flywheel.log"
"""The default file name, next to the traffic store or the ecosystem file."""


def store_action_log(store: str | Path) -> Path:
    """Where the steps on ``store`` are logged: next to a SQLite file; in the current directory for a PostgreSQL
    store (it has no folder)."""
    return Path(ACTION_LOG) if is_postgres(store) else Path(store).parent / ACTION_LOG


def log_action(path: str | Path, step: str, message: str, **details: Any) -> str:
    """Append ``<UTC time>  <step>  <message>  <details as JSON>`` to ``path``; returns the line."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = f"{stamp}  {step:<8}  {message}"
    if details:
        line += "  " + json.dumps(details, ensure_ascii=False, sort_keys=True, default=str)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    return line


def read_actions(path: str | Path) -> list[str]:
    """The log's lines, oldest first (none when there is no log yet)."""
    p = Path(path)
    return p.read_text(encoding="utf-8").splitlines() if p.is_file() else []
