"""The restricted template language of pipeline prompts: ``{name}`` and ``{name.field}``, nothing else.

A template is text with references to the pipeline input (``{input.text}``) and to earlier steps' outputs
(``{intent}``, ``{fields.amount}``). ``{{`` and ``}}`` are literal braces. A reference names a value and at most one
*declared* field of it (a key of the input schema, a property of a step's JSON schema, a field a tool declares);
there is no attribute access, no indexing, no conversion (``!r``) and no format spec (``:>10``). Values are looked up
in plain mappings, never with ``getattr``, so a template cannot reach an object's attributes the way
``str.format`` (``{x.__class__}``) or Jinja can.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Ref", "Template", "check_fields", "parse_ref", "parse_template", "render_value"]

_REF = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?")


@dataclass(frozen=True)
class Ref:
    """A reference to a value (``input`` or a step id) and, optionally, one of its declared fields."""

    name: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.name}.{self.field}" if self.field else self.name

    def lookup(self, values: Mapping[str, Any]) -> Any:
        """The referenced value from ``values`` (missing step outputs, e.g. skipped steps, are None)."""
        value = values.get(self.name)
        if self.field is None or value is None:
            return value
        return value.get(self.field) if isinstance(value, Mapping) else None


def parse_ref(text: str) -> Ref:
    """``name`` or ``name.field`` (letters, digits, '_'; starting with a letter).

    Raises:
        ValueError: anything else (indexing, deeper attributes, names starting with '_').
    """
    if not _REF.fullmatch(text):
        raise ValueError(
            f"{{{text}}} is not a reference: write {{name}} or {{name.field}} (a step id or 'input', then one "
            "declared field; no indexing, no attributes, no conversions or format specs)"
        )
    name, _, field = text.partition(".")
    return Ref(name, field or None)


def render_value(value: Any) -> str:
    """How a value appears inside text: strings as is, None as '', everything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and references, in order."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    @property
    def single_ref(self) -> Ref | None:
        """The reference when the template is exactly one ``{ref}`` (it then renders to the raw value)."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], Ref) else None

    def render(self, values: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else render_value(p.lookup(values)) for p in self.parts)

    def value(self, values: Mapping[str, Any]) -> Any:
        """The raw value for a lone ``{ref}`` (a dict stays a dict), else the rendered text."""
        ref = self.single_ref
        return ref.lookup(values) if ref is not None else self.render(values)


def parse_template(text: str) -> Template:
    """Parse ``text`` into literal parts and references.

    Raises:
        ValueError: an unbalanced brace or a reference that is not ``{name}`` / ``{name.field}``.
    """
    parts: list[str | Ref] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "{}" and i + 1 < n and text[i + 1] == ch:
            buf.append(ch)
            i += 2
            continue
        if ch == "}":
            raise ValueError(f"unmatched '}}' at character {i}; write '}}}}' for a literal brace")
        if ch == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise ValueError(f"unclosed '{{' at character {i}; write '{{{{' for a literal brace")
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(parse_ref(text[i + 1 : end].strip()))
            i = end + 1
            continue
        buf.append(ch)
        i += 1
    if buf:
        parts.append("".join(buf))
    return Template(tuple(parts))


def check_fields(refs: Sequence[Ref], declared: Mapping[str, frozenset[str] | None]) -> None:
    """Every reference names a known value and, if it names a field, one that value declares.

    ``declared`` maps each visible name to its declared fields (None: the value is known but its fields are not,
    so only the whole value may be used).

    Raises:
        ValueError: naming the reference and what would be valid.
    """
    for ref in refs:
        if ref.name not in declared:
            known = ", ".join(sorted(declared))
            raise ValueError(f"{{{ref}}}: no input or step named {ref.name!r} (known: {known})")
        fields = declared[ref.name]
        if ref.field is not None and (fields is None or ref.field not in fields):
            have = ", ".join(sorted(fields)) if fields else "none: use the whole value"
            raise ValueError(f"{{{ref}}}: {ref.name!r} declares no field {ref.field!r} (its fields: {have})")
