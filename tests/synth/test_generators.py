"""The synthetic task generators: reproducible, disjoint splits, recomputable answers, valid chat records."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Any

import pytest

from cadre.errors import ConfigError, DataError, NotFoundError
from cadre.synth import (
    GENERATORS,
    SPLITS,
    TASKS,
    TaskGenerator,
    generate,
    get_generator,
    perturb_record,
    router_view,
    split_of,
)
from cadre.synth._formats import AMOUNT_FORMATS, DATE_FORMATS, amount_ok, canonical_amount, number_words

ALL = (*TASKS, "out_of_scope", "composed")


def test_registry_lists_the_tasks_and_rejects_unknown_names() -> None:
    assert set(ALL) <= set(GENERATORS.names())
    with pytest.raises(NotFoundError, match="did you mean intents"):
        get_generator("intent")


@pytest.mark.parametrize("task", ALL)
def test_same_seed_same_records_other_seed_other_records(task: str) -> None:
    gen = get_generator(task)
    a = list(generate(gen, split="train", n=40, seed=3))
    b = list(generate(gen, split="train", n=40, seed=3))
    c = list(generate(gen, split="train", n=40, seed=4))
    assert a == b
    assert [r["text"] for r in a] != [r["text"] for r in c]


@pytest.mark.parametrize("task", ALL)
def test_splits_are_disjoint_and_a_split_does_not_depend_on_the_others(task: str) -> None:
    gen = get_generator(task)
    texts = {s: [r["text"] for r in generate(gen, split=s, n=60, seed=0)] for s in SPLITS}
    for s, ts in texts.items():
        assert len(set(ts)) == len(ts), f"duplicate texts inside {s}"
        assert all(split_of(t) == s for t in ts)
    norm = {s: {re.sub(r"\s+", " ", t.lower().strip()) for t in ts} for s, ts in texts.items()}
    assert not norm["train"] & norm["test"]
    assert not norm["train"] & norm["validation"]
    assert not norm["validation"] & norm["test"]
    # the first 20 test items are the same whether 20 or 60 are asked for
    assert [r["text"] for r in generate(gen, split="test", n=20, seed=0)] == texts["test"][:20]


@pytest.mark.parametrize("task", TASKS)
def test_records_are_chat_examples_whose_answer_is_recomputable_from_fields(task: str) -> None:
    gen = get_generator(task)
    for rec in generate(gen, split="validation", n=50, seed=1):
        rec = json.loads(json.dumps(rec))  # survives a JSONL round trip
        roles = [m["role"] for m in rec["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert rec["messages"][1]["content"] == rec["text"] == gen.render(rec["fields"])
        assert gen.answer(rec["fields"]) == rec["answer"]
        content = rec["messages"][2]["content"]
        if gen.kind == "extraction":
            assert json.loads(content) == rec["answer"]
        else:
            assert content == str(rec["answer"])
        assert router_view(rec) == {"text": rec["text"], "route": task}


def test_intents_cover_every_label_with_varied_phrasings() -> None:
    gen = get_generator("intents")
    recs = list(generate(gen, split="train", n=600, seed=0))
    counts = Counter(r["label"] for r in recs)
    assert set(counts) == set(gen.labels or ()) and len(counts) == 10
    assert min(counts.values()) >= 30
    assert len({r["text"] for r in recs}) == 600
    assert all(r["label"] in gen.system_prompt for r in recs)


def test_invoice_answers_match_the_document() -> None:
    gen = get_generator("invoices")
    for rec in generate(gen, split="test", n=80, seed=2):
        ans = rec["answer"]
        assert set(ans) == {"invoice_number", "date", "vendor", "total", "currency"}
        assert ans["invoice_number"] in rec["text"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ans["date"])
        assert ans["vendor"].lower() in rec["text"].lower()
        assert isinstance(ans["total"], float) and ans["total"] > 0
        f = rec["fields"]
        subtotal = sum(i["qty"] * i["unit_cents"] for i in f["items"])
        expect = subtotal + round(subtotal * f["tax_rate"] / 100) + f["shipping_cents"]
        assert round(ans["total"] * 100) == expect


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("month_ordinal", (2024, 3, 3), "March 3rd, 2024"),
        ("us_slash", (2024, 3, 4), "03/04/2024"),
        ("eu_dots", (2024, 3, 4), "04.03.2024"),
        ("weekday", (2024, 3, 3), "Sunday, March 3, 2024"),
        ("ordinal_of", (2023, 11, 22), "the 22nd of November, 2023"),
    ],
)
def test_date_formats(fmt: str, value: tuple[int, int, int], expected: str) -> None:
    assert DATE_FORMATS[fmt](*value) == expected


@pytest.mark.parametrize(
    ("fmt", "cents", "cur", "text", "canonical"),
    [
        ("k_suffix", 120_000, "USD", "$1.2k", "1200.00"),
        ("symbol", 123_450, "USD", "$1,234.50", "1234.50"),
        ("european", 123_450, "EUR", "1.234,50 €", "1234.50"),
        ("words", 1250, "USD", "twelve dollars and fifty cents", "12.50"),
        ("m_suffix", 340_000_000, "EUR", "€3.4M", "3400000.00"),
    ],
)
def test_amount_formats(fmt: str, cents: int, cur: str, text: str, canonical: str) -> None:
    assert amount_ok(fmt, cents)
    assert AMOUNT_FORMATS[fmt](cents, cur) == text
    assert canonical_amount(cents) == canonical


def test_number_words() -> None:
    assert number_words(342) == "three hundred forty-two"
    assert number_words(90) == "ninety"
    with pytest.raises(ValueError):
        number_words(1000)


@pytest.mark.parametrize("task", TASKS)
def test_number_resampling_keeps_the_template_and_recomputes_the_answer(task: str) -> None:
    gen = get_generator(task)
    changed = 0
    for rec in generate(gen, split="test", n=30, seed=5):
        new = perturb_record(gen, rec, "numbers", seed=1)
        assert new["answer"] == gen.answer(new["fields"])
        assert new["perturbation"] == "numbers"
        assert new["id"] != rec["id"]
        changed += new["text"] != rec["text"]
        if gen.kind == "classification":
            assert new["label"] == rec["label"]
        assert perturb_record(gen, rec, "numbers", seed=1) == new  # deterministic
    assert changed >= 15  # some intent phrasings have no number in them


def test_unsupported_perturbation_is_a_config_error() -> None:
    rec = next(generate(get_generator("normalize"), split="test", n=1))
    with pytest.raises(ConfigError, match="supports: numbers"):
        perturb_record(get_generator("normalize"), rec, "names")


def test_bad_arguments() -> None:
    gen = get_generator("intents")
    with pytest.raises(ConfigError, match="unknown split"):
        list(generate(gen, split="dev", n=1))
    with pytest.raises(ConfigError):
        list(generate(gen, split="train", n=-1))


class _TinyGenerator:
    """A generator with only five possible texts, to exhaust."""

    name = "tiny"
    kind = "classification"
    description = "five texts"
    system_prompt = "Say the label."
    metric = "accuracy"
    labels = ("a",)
    resample_kinds = ()

    def sample_fields(self, rng: random.Random) -> dict[str, Any]:
        return {"i": rng.randrange(5)}

    def render(self, fields: dict[str, Any]) -> str:
        return f"text number {fields['i']}"

    def answer(self, fields: dict[str, Any]) -> str:
        return "a"

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
        return fields


def test_an_exhausted_template_space_is_a_data_error() -> None:
    gen = _TinyGenerator()
    assert isinstance(gen, TaskGenerator)
    available = sum(split_of(f"text number {i}") == "train" for i in range(5))
    assert len(list(generate(gen, split="train", n=available))) == available
    with pytest.raises(DataError, match=f"ran out of distinct train examples after {available} of"):
        list(generate(gen, split="train", n=available + 1))
