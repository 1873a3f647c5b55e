"""The composed task: a support message with an invoice inside, one JSON answer, and per-step references."""

from __future__ import annotations

import random

import pytest

from cadre.errors import ConfigError
from cadre.synth import generate, get_generator, perturb_record
from cadre.synth.composed import COMPOSED_INTENTS
from cadre.synth.intents import GENERATOR as INTENTS_GEN
from cadre.synth.invoices import GENERATOR as INVOICES_GEN


def test_the_text_is_a_message_line_then_the_invoice_and_the_answer_joins_the_three_tasks() -> None:
    gen = get_generator("composed")
    records = list(generate(gen, split="test", n=30, seed=1))
    for r in records:
        f = r["fields"]
        message, doc = r["text"].split("\n\n", 1)
        assert "\n" not in message and message.startswith(" ".join(INTENTS_GEN.render(f["message"]).split()))
        assert doc == INVOICES_GEN.render(f["invoice"])
        refs = r["step_references"]
        assert refs["intent"] == r["answer"]["intent"] == f["message"]["intent"]
        assert refs["fields"] == INVOICES_GEN.answer(f["invoice"])
        assert r["answer"] == {
            "intent": refs["intent"],
            "invoice_number": refs["fields"]["invoice_number"],
            "date": refs["date"],
            "vendor": refs["fields"]["vendor"],
            "total": refs["amount"],
            "currency": refs["fields"]["currency"],
        }
        assert r["messages"][-1]["content"].startswith('{"intent": ')
    assert {r["answer"]["intent"] for r in records} <= set(COMPOSED_INTENTS)
    assert len({r["answer"]["intent"] for r in records}) >= 4
    assert all(label in gen.system_prompt for label in INTENTS_GEN.labels)


def test_only_the_composed_task_carries_step_references() -> None:
    rec = next(generate(get_generator("invoices"), split="test", n=1))
    assert "step_references" not in rec


def test_resampling_numbers_keeps_the_intent_and_recomputes_the_answer() -> None:
    gen = get_generator("composed")
    rec = next(generate(gen, split="test", n=1, seed=2))
    new = perturb_record(gen, rec, "numbers", seed=5)
    assert new["answer"]["intent"] == rec["answer"]["intent"]
    assert new["answer"]["total"] != rec["answer"]["total"]
    assert new["step_references"]["amount"] == new["answer"]["total"]
    with pytest.raises(ConfigError, match="use one of numbers, names"):
        gen.resample(rec["fields"], "typos", random.Random(0))
