"""Reading a model's answer as a call step asks (``parse: json|label|number``), and checking a pipeline's input.

Only the JSON Schema subset that steps need is checked: ``type`` (object, string, number, integer, boolean, array,
null, or a list of them), ``properties``, ``required``, ``enum`` and ``items``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_input", "check_json", "parse_answer"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def check_json(value: Any, schema: Mapping[str, Any], path: str = "") -> None:
    """Raise ValueError naming the first place where ``value`` does not match ``schema`` (the subset above)."""
    where = path or "the answer"
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(value, k) for k in kinds):
            raise ValueError(f"{where} should be {' or '.join(kinds)}, not {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{where} should be one of {schema['enum']}, not {value!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise ValueError(f"{where} lacks the field {key!r}")
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and isinstance(sub, Mapping):
                check_json(value[key], sub, f"{path}.{key}" if path else key)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            check_json(item, schema["items"], f"{where}[{i}]")


def _first_json_object(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return value
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    raise ValueError(f"the answer is not JSON: {text[:80]!r}")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def parse_answer(
    text: str, parse: str, *, json_schema: Mapping[str, Any] | None = None, labels: Sequence[str] = ()
) -> Any:
    """The answer as the step declares it (``text`` stripped, a JSON object, one of ``labels``, a number).

    Raises:
        ValueError: the answer does not parse; the message quotes its start.
    """
    if parse == "text":
        return text.strip()
    if parse == "json":
        value = _first_json_object(text)
        if not isinstance(value, dict):
            raise ValueError(f"the answer is JSON but not an object: {text.strip()[:80]!r}")
        if json_schema:
            check_json(value, json_schema)
        return value
    if parse == "label":
        answer = _norm(text)
        by_norm = {_norm(label): label for label in labels}
        if answer in by_norm:
            return by_norm[answer]
        found = [label for n, label in by_norm.items() if n and re.search(rf"\b{re.escape(n)}\b", answer)]
        if len(found) == 1:
            return found[0]
        raise ValueError(f"the answer {text.strip()[:60]!r} is not one of the labels {', '.join(labels)}")
    if parse == "number":
        m = _NUMBER.search(text)
        if m is None:
            raise ValueError(f"the answer has no number: {text.strip()[:60]!r}")
        number = float(m.group(0).replace(",", ""))
        return int(number) if number.is_integer() and "." not in m.group(0) else number
    raise ValueError(f"unknown parse mode {parse!r}")


def check_input(data: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    """The pipeline input as a mapping of its declared fields, each of its declared JSON type.

    A plain string is accepted for a pipeline whose input is one string field.

    Raises:
        ValueError: a missing, unknown or mistyped field (the message names it and the expected input).
    """
    expected = ", ".join(f"{k}: {v}" for k, v in fields.items())
    if isinstance(data, str):
        strings = [k for k, v in fields.items() if v == "string"]
        if len(fields) == 1 and strings:
            return {strings[0]: data}
        raise ValueError(f"the input must be a JSON object with {expected}")
    if not isinstance(data, Mapping):
        raise ValueError(f"the input must be a JSON object with {expected}, not {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"the input has an unknown field {unknown[0]!r} (fields: {expected})")
    for key, kind in fields.items():
        if key not in data:
            raise ValueError(f"the input lacks the field {key!r} (fields: {expected})")
        if not _is_type(data[key], kind):
            raise ValueError(f"input field {key!r} should be {kind}, not {type(data[key]).__name__}")
    return dict(data)
