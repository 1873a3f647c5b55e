"""Where cadre keeps user state (calibration, corpora, caches): ``$CADRE_HOME``, default ``~/.cadre``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cadre.errors import ConfigError

__all__ = ["cadre_home", "safe_name"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def cadre_home() -> Path:
    """The user-state directory, created on first use."""
    home = Path(os.environ.get("CADRE_HOME") or Path.home() / ".cadre")
    home.mkdir(parents=True, exist_ok=True)
    return home


def safe_name(name: str, *, kind: str) -> str:
    """Return ``name`` if it is a plain name (no path separators, no '..'); used for adapter/model/corpus names."""
    if not _SAFE.match(name) or ".." in name:
        raise ConfigError(
            f"invalid {kind} name {name!r}: use 1-128 letters, digits, '.', '_' or '-' (no paths, no '..')"
        )
    return name
