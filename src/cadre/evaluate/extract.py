"""Reading the answer out of generated text: a label, a regex group, a JSON field, a number, or the text."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import model_validator

from cadre.config.base import StrictModel
from cadre.errors import ConfigError
from cadre.evaluate.metrics import _NUMBER, normalize_label, parse_number

__all__ = [
    "ExtractSpec",
    "Extractor",
    "JsonExtractor",
    "LabelExtractor",
    "NumberExtractor",
    "RegexExtractor",
    "TextExtractor",
    "build_extractor",
    "first_json_object",
    "repair_json",
]


class ExtractSpec(StrictModel):
    """How the answer is read from the generated text."""

    kind: Literal["label", "regex", "json", "number", "text"] = "text"
    labels: list[str] | None = None
    """For ``label``: the label set; default: every distinct target in the data."""
    pattern: str | None = None
    """For ``regex``: a pattern; the named group ``answer``, else group 1, else the whole match."""
    field: str | None = None
    """For ``json``: the field to take from the first JSON object in the output (default: the whole object)."""
    position: Literal["first", "last"] = "last"
    """For ``number``: which number in the output (GSM8K practice: the last)."""
    json_schema: dict[str, Any] | None = None
    """For ``json``: a JSON Schema the answer follows; with ``generation.constrain: auto``, llama.cpp backends decode
    under a grammar built from it (``runtime.grammars.json_grammar``), so the output always parses and matches."""
    lenient: bool = False
    """For ``json``: when the output is not valid JSON, retry after fixing thousands separators in numbers
    and trailing commas (strict by default: a consumer of the JSON would fail on it too)."""

    @model_validator(mode="after")
    def _check(self) -> ExtractSpec:
        if self.kind == "regex" and not self.pattern:
            raise ValueError("extract.kind 'regex' needs extract.pattern")
        if self.json_schema is not None and self.kind != "json":
            raise ValueError("extract.json_schema applies to extract.kind 'json' only")
        return self


class Extractor(Protocol):
    def __call__(self, text: str) -> Any:
        """The answer in ``text``, or None when there is none."""
        ...


class TextExtractor:
    """The whole output, stripped (for exact match and token F1)."""

    def __call__(self, text: str) -> Any:
        s = text.strip()
        return s or None


class LabelExtractor:
    """One label of a closed set.

    The output matches a label when, normalized (casefold, ``_``/``-`` as spaces, no edge punctuation), it
    equals the label, or its first line does; otherwise the label mentioned earliest in the output wins (the
    longest one when two start at the same place, so "order status" beats "order"). No label: None.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        if not labels:
            raise ConfigError("label extraction needs a non-empty label set (extract.labels)")
        self.labels = list(labels)
        self._norm = {normalize_label(label): label for label in self.labels}
        alts = sorted(self._norm, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![a-z0-9])(" + "|".join(re.escape(a) for a in alts) + r")(?![a-z0-9])"
        )

    def __call__(self, text: str) -> Any:
        whole = normalize_label(text)
        if whole in self._norm:
            return self._norm[whole]
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        first = normalize_label(lines[0]) if lines else ""
        if first in self._norm:
            return self._norm[first]
        m = self._pattern.search(whole)
        return self._norm[m.group(1)] if m else None


class RegexExtractor:
    """The named group ``answer``, else group 1, else the whole first match."""

    def __init__(self, pattern: str) -> None:
        try:
            self.pattern = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        except re.error as err:
            raise ConfigError(
                f"extract.pattern {pattern!r} is not a valid regular expression: {err}"
            ) from None

    def __call__(self, text: str) -> Any:
        m = self.pattern.search(text)
        if not m:
            return None
        if "answer" in self.pattern.groupindex:
            value = m.group("answer")
        elif self.pattern.groups:
            value = m.group(1)
        else:
            value = m.group(0)
        return value.strip() if value is not None else None


_THOUSANDS = re.compile(r"(:\s*-?)(\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?=\s*[,}\]])")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def repair_json(text: str) -> str:
    """Fix the two slips small models make most in JSON: thousands separators in bare numbers
    (``"total": 2,417.84``) and trailing commas."""
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    return _TRAILING_COMMA.sub(r"\1", text)


def first_json_object(text: str, *, lenient: bool = False) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` that parses as a JSON object (code fences and chatter around it ok).

    With ``lenient``, text that does not parse is retried after :func:`repair_json`.
    """
    decoder = json.JSONDecoder()
    candidates = [text, repair_json(text)] if lenient else [text]
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                return obj
            start = candidate.find("{", start + 1)
    return None


class JsonExtractor:
    """The first JSON object in the output, or one ``field`` of it (``lenient``: repair common slips)."""

    def __init__(self, field: str | None = None, *, lenient: bool = False) -> None:
        self.field = field
        self.lenient = lenient

    def __call__(self, text: str) -> Any:
        obj = first_json_object(text, lenient=self.lenient)
        if obj is None:
            return None
        return obj.get(self.field) if self.field else obj


class NumberExtractor:
    """The first or last number in the output (``1,234.5``, ``-3``, ``$12``)."""

    def __init__(self, position: str = "last") -> None:
        self.position = position

    def __call__(self, text: str) -> Any:
        found = _NUMBER.findall(text)
        if not found:
            return None
        return parse_number(found[0] if self.position == "first" else found[-1])


def build_extractor(spec: ExtractSpec, *, labels: Sequence[str] | None = None) -> Extractor:
    """The extractor the task spec asks for (``labels`` is the resolved label set for ``kind: label``)."""
    if spec.kind == "label":
        return LabelExtractor(labels or spec.labels or [])
    if spec.kind == "regex":
        return RegexExtractor(spec.pattern or "")
    if spec.kind == "json":
        return JsonExtractor(spec.field, lenient=spec.lenient)
    if spec.kind == "number":
        return NumberExtractor(spec.position)
    return TextExtractor()
