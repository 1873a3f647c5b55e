"""Metadata filters: validated once, then matched in Python (BM25 side) or compiled to SQL by each store."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cadre.errors import ConfigError
from cadre.knowledge.protocol import Chunk

__all__ = ["COLUMN_KEYS", "matches", "normalize_filters"]

_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
# Filter keys that are chunk columns rather than metadata entries.
COLUMN_KEYS = ("source", "file")
Scalar = str | int | float | bool


def normalize_filters(filters: Mapping[str, Any] | None) -> dict[str, list[Scalar]]:
    """Check ``filters`` and return key -> list of accepted values (a scalar becomes a one-item list).

    Raises:
        ConfigError: a key is not a plain name or a value is not a string, number or boolean.
    """
    out: dict[str, list[Scalar]] = {}
    for key, value in (filters or {}).items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigError(f"invalid filter key {key!r}: use letters, digits, '_', '.' or '-'")
        values = list(value) if isinstance(value, list | tuple | set) else [value]
        if not values:
            raise ConfigError(f"filter {key!r} has an empty list of values: give at least one")
        for v in values:
            if not isinstance(v, str | int | float | bool):
                raise ConfigError(f"filter {key!r}: value {v!r} must be a string, number or boolean")
        out[key] = values
    return out


def _value(chunk: Chunk, key: str) -> Any:
    if key == "source":
        return chunk.source
    if key == "file":
        return chunk.file
    return chunk.metadata.get(key)


def matches(chunk: Chunk, filters: Mapping[str, list[Scalar]]) -> bool:
    """Whether ``chunk`` satisfies every (normalised) filter."""
    return all(_value(chunk, key) in values for key, values in filters.items())
