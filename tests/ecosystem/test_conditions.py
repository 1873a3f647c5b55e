"""The when: grammar, parsed by cadre (no eval): equality, membership, comparison, and/or/not, parentheses."""

from __future__ import annotations

import pytest

from cadre.ecosystem import parse_condition

VALUES = {
    "intent": "refund",
    "fields": {"amount": 120.5, "currency": "USD"},
    "input": {"text": "hi"},
    "gone": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("intent == 'refund'", True),
        ('intent != "refund"', False),
        ("intent in ['refund', 'billing']", True),
        ("intent not in ['refund']", False),
        ("fields.amount > 100", True),
        ("fields.amount <= 100", False),
        ("fields.amount >= 120.5 and fields.currency == 'USD'", True),
        ("intent == 'x' or fields.currency == 'USD'", True),
        ("not (intent == 'x' or intent == 'y')", True),
        ("gone", False),
        ("intent", True),
        ("gone == null", True),
        ("gone > 3", False),  # a skipped step's None never raises
        ("fields.amount > 'a'", False),  # mixed types compare false
        ("'ref' in intent", True),
        ("fields.missing == null", True),
    ],
)
def test_evaluates(text: str, expected: bool) -> None:
    assert parse_condition(text)(VALUES) is expected


def test_refs_are_collected() -> None:
    cond = parse_condition("intent == 'refund' and fields.amount > 3")
    assert [str(r) for r in cond.refs] == ["intent", "fields.amount"]


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "intent ==",
        "intent = 'refund'",
        "(intent == 'a'",
        "intent.__class__ == 1",
        "fields.amount.x > 1",
        "intent == 'a' and",
        "",
        "intent in [refund]",
        "lambda: 1",
    ],
)
def test_bad_conditions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="when"):
        parse_condition(text)
