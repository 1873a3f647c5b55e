"""Metrics and answer extraction on hand-checked cases."""

from __future__ import annotations

import pytest

from cadre.errors import ConfigError, NotFoundError
from cadre.evaluate.extract import (
    JsonExtractor,
    LabelExtractor,
    NumberExtractor,
    RegexExtractor,
    TextExtractor,
    first_json_object,
)
from cadre.evaluate.metrics import METRICS, MacroF1, Metric, build_metric, normalize_label, parse_number


def test_accuracy_and_exact_match() -> None:
    acc = build_metric("accuracy")
    assert acc.score("Order_Status.", "order status") == 1.0
    assert acc.score(None, "x") == 0.0
    assert acc.aggregate(["a", "b", None, "d"], ["a", "x", "c", "d"]) == 0.5
    em = build_metric("exact_match")
    assert em.score(" 2010-02-26\n", "2010-02-26") == 1.0
    assert em.score("2010-02-26.", "2010-02-26") == 0.0
    loose = build_metric("exact_match", {"ignore_case": True, "ignore_punctuation": True})
    assert loose.score("Paris!", "paris") == 1.0


def test_token_f1_squad_style() -> None:
    f1 = build_metric("token_f1")
    # pred tokens {quick, brown, fox} vs ref {brown, fox, jumps}: 2 common, P = R = 2/3, F1 = 2/3
    assert f1.score("The quick brown fox", "brown fox jumps") == pytest.approx(2 / 3)
    assert f1.score("the", "a") == 1.0  # both empty after dropping articles
    assert f1.score("cat", "dog") == 0.0


def test_numeric_match_with_tolerance() -> None:
    exact = build_metric("numeric_match")
    assert exact.score("$1,234.50", 1234.5) == 1.0
    assert exact.score("1234.6", 1234.5) == 0.0
    rel = build_metric("numeric_match", {"rel_tol": 0.01})
    assert rel.score(101, 100) == 1.0 and rel.score(102, 100) == 0.0
    assert build_metric("numeric_match", {"abs_tol": 0.5}).score("−3.4", -3) == 1.0
    assert exact.score("no number", 3) == 0.0
    with pytest.raises(ConfigError, match="tolerances"):
        build_metric("numeric_match", {"abs_tol": -1})


def test_json_field_match_partial_credit() -> None:
    m = build_metric("json_field_match", {"abs_tol": 0.005})
    ref = {"invoice_number": "166504", "vendor": "Ironbark Tools", "total": 2664.61, "currency": "EUR"}
    pred = {"invoice_number": "166504", "vendor": "ironbark tools", "total": "2,664.61", "currency": "USD"}
    assert m.score(pred, ref) == 0.75
    assert m.score(ref, ref) == 1.0
    assert m.score(None, ref) == 0.0
    assert m.score('{"total": 2664.61}', '{"total": 2664.61}') == 1.0
    only = build_metric("json_field_match", {"fields": ["total"]})
    assert only.score(pred, ref) == 1.0
    with pytest.raises(ConfigError, match="JSON objects as references"):
        m.score(pred, "not an object")


def test_macro_f1_equals_sklearn() -> None:
    from sklearn.metrics import f1_score

    refs = ["a", "a", "a", "b", "b", "c", "c", "c", "c", "a"]
    preds = ["a", "b", None, "b", "b", "c", "a", "c", "b", "a"]
    ours = MacroF1().aggregate(preds, refs)
    theirs = f1_score(refs, [p or "<none>" for p in preds], average="macro", labels=["a", "b", "c"])
    assert ours == pytest.approx(theirs)
    assert MacroF1().score("A", "a") == 1.0


def test_registry_and_plugin_metric() -> None:
    assert {"accuracy", "exact_match", "token_f1", "numeric_match", "json_field_match", "macro_f1"} <= set(
        METRICS.names()
    )

    class LengthWithin:
        name = "length_within"

        def __init__(self, *, chars: int = 10) -> None:
            self.chars = chars

        def score(self, prediction: object, reference: object) -> float:
            return float(
                prediction is not None and abs(len(str(prediction)) - len(str(reference))) <= self.chars
            )

        def aggregate(self, predictions, references) -> float:  # type: ignore[no-untyped-def]
            s = [self.score(p, r) for p, r in zip(predictions, references)]
            return sum(s) / len(s)

    METRICS.register("length_within", LengthWithin, replace=True)
    m = build_metric("length_within", {"chars": 2})
    assert isinstance(m, Metric) and m.score("abcd", "ab") == 1.0
    with pytest.raises(ConfigError, match="bad options"):
        build_metric("length_within", {"nope": 1})
    with pytest.raises(NotFoundError, match="did you mean"):
        build_metric("acuracy")


def test_normalize_and_parse_number() -> None:
    assert normalize_label("  Order-Status! ") == "order status"
    assert parse_number("Total: EUR 2,664.61") == 2664.61
    assert parse_number("1e3") == 1000.0
    assert parse_number(True) is None and parse_number("none") is None


def test_label_extractor() -> None:
    ex = LabelExtractor(["order_status", "order", "refund_request"])
    assert ex("order_status") == "order_status"
    assert ex("Refund Request.") == "refund_request"
    assert ex("refund_request\nBecause the customer wants money") == "refund_request"
    assert ex("The intent is: order status, clearly.") == "order_status"  # longest at the same position
    assert ex("I think this is an order") == "order"
    assert ex("reorder_status") is None  # not a whole-word match
    assert ex("no idea") is None
    with pytest.raises(ConfigError):
        LabelExtractor([])


def test_regex_json_number_text_extractors() -> None:
    assert RegexExtractor(r"answer:\s*(\w+)")("Answer: Paris.") == "Paris"
    assert RegexExtractor(r"(?P<x>\d+)-(?P<answer>\d+)")("12-34") == "34"
    assert RegexExtractor(r"\d+")("abc 42") == "42"
    assert RegexExtractor(r"\d+")("none") is None
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        RegexExtractor("(")
    text = 'Sure! ```json\n{"total": 12.5, "currency": "EUR"}\n``` {"other": 1}'
    assert first_json_object(text) == {"total": 12.5, "currency": "EUR"}
    assert first_json_object('{broken {"a": 1}') == {"a": 1}
    assert JsonExtractor("total")(text) == 12.5
    sloppy = '{"invoice_number": "166504", "total": 2,417.84, "currency": "EUR",}'
    assert JsonExtractor()(sloppy) is None  # strict by default: a JSON consumer would fail too
    assert JsonExtractor(lenient=True)(sloppy) == {
        "invoice_number": "166504",
        "total": 2417.84,
        "currency": "EUR",
    }
    assert JsonExtractor("total", lenient=True)('{"a": "1,234", "total": -1,000}') == -1000
    assert JsonExtractor()("no json") is None
    assert NumberExtractor()("first 3 then 1,250.5 apples") == 1250.5
    assert NumberExtractor("first")("first 3 then 4") == 3.0
    assert NumberExtractor()("none") is None
    assert TextExtractor()("  hi  ") == "hi" and TextExtractor()("   ") is None
