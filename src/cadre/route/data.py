"""Labelled routing examples: JSONL ``{"text": ..., "route": ...}``; ``route`` null = out of scope (a file row
must write the key: a forgotten one is an error, not a silent out-of-scope label)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadre.config.jsonl import iter_jsonl
from cadre.errors import DataError, NotFoundError
from cadre.route.protocol import GENERALIST

__all__ = ["Example", "check_examples", "load_examples", "parse_example", "routes_of"]

_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Example:
    """One labelled request. ``route`` None means out of scope (the generalist should answer it)."""

    text: str
    route: str | None = None
    quality: dict[str, float] | None = (
        None  # optional per-system quality ({"specialist": 1, "generalist": 0})
    )
    line: int = 0  # 1-based line in the source file (0 when built in code)

    @property
    def in_scope(self) -> bool:
        return self.route is not None


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.strip()).casefold()


def parse_example(obj: Any, *, where: str = "example") -> Example:
    """Validate one decoded JSON object (or ``Example``); ``where`` prefixes error messages."""
    if isinstance(obj, Example):
        obj = {"text": obj.text, "route": obj.route, "quality": obj.quality}
    if not isinstance(obj, dict):
        raise DataError(f'{where}: expected an object like {{"text": "...", "route": "billing"}}')
    unknown = set(obj) - {"text", "route", "quality", "id", "meta"}
    if unknown:
        raise DataError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: text, route, quality, id, meta"
        )
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f'{where}: "text" must be a non-empty string')
    route = obj.get("route")
    if route is not None:
        if not isinstance(route, str) or not _ROUTE_NAME.match(route):
            raise DataError(
                f"{where}: route {route!r} is not a valid name (letters, digits, '.', '_', '-'); "
                "use null for out-of-scope examples"
            )
        if route == GENERALIST:
            route = None  # labelling an example "generalist" means out of scope
    quality = obj.get("quality")
    if quality is not None:
        if not isinstance(quality, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in quality.values()
        ):
            raise DataError(f'{where}: "quality" must map system names to numbers, e.g. {{"specialist": 1}}')
        quality = {str(k): float(v) for k, v in quality.items()}
    return Example(text=text, route=route, quality=quality)


def load_examples(path: str | Path) -> list[Example]:
    """Read a JSONL file of examples; errors name the file and line.

    Raises:
        NotFoundError: the file does not exist.
        DataError: a line is not JSON, or a field is missing or malformed, or the file has no examples.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"data file {str(p)!r} does not exist")
    out: list[Example] = []
    for n, obj in iter_jsonl(p, fix="one object per line"):
        if isinstance(obj, dict) and "route" not in obj:
            # A forgotten key must not silently become "out of scope": null has to be written out.
            raise DataError(
                f'{p}:{n}: no "route" key; give the route name, or "route": null for an out-of-scope example'
            )
        ex = parse_example(obj, where=f"{p}:{n}")
        out.append(Example(text=ex.text, route=ex.route, quality=ex.quality, line=n))
    if not out:
        raise DataError(f"{p}: no examples; write one JSON object per line with 'text' and 'route'")
    return out


def _where(ex: Example) -> str:
    return f"line {ex.line}" if ex.line else repr(ex.text[:40])


def check_examples(examples: Iterable[Example], *, min_per_route: int) -> tuple[list[Example], int]:
    """Validate training examples; return them without exact duplicates, and how many were dropped.

    Raises:
        DataError: a route has fewer than ``min_per_route`` examples, the same text carries two different
            labels, or there is no route at all.
    """
    seen: dict[str, Example] = {}
    kept: list[Example] = []
    dropped = 0
    for ex in examples:
        ex = parse_example(ex, where=_where(ex)) if not ex.line else ex
        key = _norm(ex.text)
        prev = seen.get(key)
        if prev is None:
            seen[key] = ex
            kept.append(ex)
        elif prev.route == ex.route:
            dropped += 1
        else:
            a = prev.route or "out-of-scope"
            b = ex.route or "out-of-scope"
            raise DataError(
                f"conflicting labels for the same text ({_where(prev)}: {a}, {_where(ex)}: {b}): "
                f"{ex.text[:60]!r}; keep one label"
            )
    counts = Counter(ex.route for ex in kept if ex.route is not None)
    if not counts:
        raise DataError("no in-scope examples: give each example a 'route' (null only for out-of-scope ones)")
    short = {r: c for r, c in sorted(counts.items()) if c < min_per_route}
    if short:
        need = ", ".join(f"{r}: {c} (add {min_per_route - c})" for r, c in short.items())
        raise DataError(
            f"too few examples per route, at least {min_per_route} are needed: {need}; "
            "or lower min_examples_per_route"
        )
    return kept, dropped


def routes_of(examples: Sequence[Example]) -> list[str]:
    """Sorted route names present in ``examples``."""
    return sorted({ex.route for ex in examples if ex.route is not None})
