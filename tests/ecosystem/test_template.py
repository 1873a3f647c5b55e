"""The restricted template language: references only, declared fields only, no attribute or index access."""

from __future__ import annotations

import pytest

from cadre.ecosystem import parse_template
from cadre.ecosystem.template import check_fields


def test_renders_references_and_escapes() -> None:
    t = parse_template("Intent {intent}; amount {fields.amount} {{literal}}")
    values = {"intent": "refund", "fields": {"amount": 12.0, "date": "x"}}
    assert t.render(values) == "Intent refund; amount 12 {literal}"
    assert [str(r) for r in t.refs] == ["intent", "fields.amount"]


def test_a_lone_reference_keeps_its_value() -> None:
    assert parse_template("{fields}").value({"fields": {"a": 1}}) == {"a": 1}
    assert parse_template("x {fields}").value({"fields": {"a": 1}}) == 'x {"a": 1}'


@pytest.mark.parametrize(
    "text",
    [
        "{input.__class__}",  # attribute access as str.format allows
        "{input.text.__class__.__mro__}",  # deeper attributes
        "{input[0]}",  # indexing
        "{input!r}",  # conversion
        "{input:>10}",  # format spec
        "{_private}",
        "{}",
        "{input",
        "input}",
    ],
)
def test_anything_but_a_reference_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_template(text)


def test_only_declared_fields_are_reachable() -> None:
    declared = {"input": frozenset({"text"}), "intent": None}
    check_fields(parse_template("{input.text} {intent}").refs, declared)
    with pytest.raises(ValueError, match="declares no field 'upper'"):
        check_fields(parse_template("{input.upper}").refs, declared)
    with pytest.raises(ValueError, match=r"declares no field 'label'.*whole value"):
        check_fields(parse_template("{intent.label}").refs, declared)
    with pytest.raises(ValueError, match="no input or step named 'nope'"):
        check_fields(parse_template("{nope}").refs, declared)


def test_values_are_looked_up_in_mappings_never_as_attributes() -> None:
    class Sneaky:
        secret = "leaked"

    t = parse_template("{obj.secret}")
    assert t.render({"obj": Sneaky()}) == ""
