from __future__ import annotations

from collections import Counter

import pytest

from cadre.config import parse_spec
from cadre.errors import ConfigError
from cadre.traffic import RedactionSpec, Redactor, iban_valid, luhn_valid

from .pii_cases import NEAR_MISSES, PII


@pytest.mark.parametrize(("kind", "value"), PII, ids=[f"{k}:{v}" for k, v in PII])
def test_each_kind_of_pii_is_replaced_and_counted(kind: str, value: str) -> None:
    counts: Counter[str] = Counter()
    out = Redactor().redact(f"Hello, it is {value}, thanks.", counts)
    assert out == f"Hello, it is [{kind.upper()}], thanks."
    assert counts == {kind: 1}


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_survive(text: str) -> None:
    counts: Counter[str] = Counter()
    assert Redactor().redact(text, counts) == text
    assert not counts


def test_pii_amid_near_misses_in_one_text() -> None:
    text = " | ".join([*NEAR_MISSES, *(v for _, v in PII)])
    counts: Counter[str] = Counter()
    out = Redactor().redact(text, counts)
    for _, value in PII:
        assert value not in out
    for miss in NEAR_MISSES:
        assert miss in out
    assert counts == Counter(kind for kind, _ in PII)


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert luhn_valid("79927398713")  # the classic Luhn example
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82")


def test_only_the_chosen_types_and_user_patterns() -> None:
    spec = RedactionSpec(types=["email"], patterns={"customer_id": r"\bCUST-\d{6}\b"})
    counts: Counter[str] = Counter()
    out = Redactor(spec).redact("jane@example.com CUST-123456 at 192.168.1.20", counts)
    assert out == "[EMAIL] [CUSTOMER_ID] at 192.168.1.20"
    assert counts == {"email": 1, "customer_id": 1}


@pytest.mark.parametrize(
    ("patterns", "message"),
    [({"x": "("}, "not a valid regular expression"), ({"x": "a*"}, "empty string"), ({"1x": "a"}, "letters")],
)
def test_bad_user_patterns_are_config_errors(patterns: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(RedactionSpec, {"patterns": patterns}, source="capture.redact")


def test_messages_keep_roles_and_non_text_content() -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I am jane@example.com"}]
    assert Redactor().redact_messages(msgs) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "I am [EMAIL]"},
    ]
