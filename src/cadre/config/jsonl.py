"""JSON Lines reading shared by every data loader: blank lines skipped, errors name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cadre.errors import DataError

__all__ = ["iter_jsonl"]


def iter_jsonl(path: Path, *, fix: str = "", column: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed value)`` for each non-blank line of ``path`` (numbers start at 1).

    Raises:
        DataError: a line is not JSON: ``"<path>:<line>: not valid JSON (<reason>)"``, where the reason
            names the column when ``column`` is set, followed by ``"; <fix>"`` when ``fix`` is given.
    """
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                reason = f"{err.msg} at column {err.colno}" if column else err.msg
                tail = f"; {fix}" if fix else ""
                raise DataError(f"{path}:{lineno}: not valid JSON ({reason}){tail}") from None
            yield lineno, value
