"""Console output shared by the commands: Rich consoles and the ``--json`` printer."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from cadre.config import to_jsonable

__all__ = ["console", "err_console", "print_json", "to_jsonable"]

console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout, with nothing else (machine-readable)."""
    print(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False))
