"""The composed task: a support message with an invoice pasted under it, answered as one JSON object.

It is built from the three specialist tasks' generators, so a pipeline of the three specialists can be compared
with one generalist prompt on the same items: the message comes from ``intents`` (an intent for which sending an
invoice makes sense), the document from ``invoices``, and the answer needs the intent, the invoice fields, and
the date and amount in the canonical forms of ``normalize``.

The text is the message on one line, ending with a sentence that introduces the invoice, then a blank line and
the document. Each record also carries ``step_references``: the reference of every step of the demo's
``support`` pipeline (intent label, extracted fields, normalized date and amount), so per-step accuracy can be
reported.
"""

from __future__ import annotations

import random
from typing import Any

from cadre.errors import ConfigError
from cadre.synth._formats import canonical_date
from cadre.synth.intents import GENERATOR as INTENTS_GEN
from cadre.synth.intents import INTENTS
from cadre.synth.invoices import GENERATOR as INVOICES_GEN

__all__ = ["COMPOSED_INTENTS", "GENERATOR", "ComposedGenerator"]

# The intents a customer plausibly writes with an invoice attached (the label set stays all ten).
COMPOSED_INTENTS = (
    "order_status",
    "cancel_order",
    "refund_request",
    "damaged_item",
    "payment_issue",
    "invoice_request",
)
_LEAD_INS = (
    "Here is the invoice:",
    "The invoice is below.",
    "I've pasted the invoice here:",
    "Copy of the invoice:",
    "Invoice details below.",
    "This is what the invoice says:",
)


class ComposedGenerator:
    """Support message + invoice → ``{"intent", "invoice_number", "date", "vendor", "total", "currency"}``."""

    name = "composed"
    kind = "extraction"
    description = (
        "A support message with an invoice pasted under it: intent, invoice fields, and the normalized date and "
        "amount, in one JSON object."
    )
    metric = "json_field_match"
    labels = None
    resample_kinds = ("numbers", "names")
    system_prompt = (
        "You handle customer support messages that include an invoice. Reply with one JSON object with exactly "
        'these keys: "intent" (one of: '
        + ", ".join(INTENTS)
        + '), "invoice_number" (string), "date" (the invoice\'s issue date, YYYY-MM-DD), "vendor" (the seller), '
        '"total" (the final amount due, a number), "currency" (ISO code such as USD or EUR).'
    )

    def sample_fields(self, rng: random.Random) -> dict[str, Any]:
        message = INTENTS_GEN.sample_fields(rng)
        intent = rng.choice(COMPOSED_INTENTS)
        message.update(intent=intent, template=rng.randrange(len(INTENTS[intent])))
        return {
            "message": message,
            "invoice": INVOICES_GEN.sample_fields(rng),
            "lead_in": rng.randrange(len(_LEAD_INS)),
        }

    def render(self, fields: dict[str, Any]) -> str:
        message = " ".join(
            INTENTS_GEN.render(fields["message"]).split()
        )  # one line: the pipeline splits on it
        return f"{message} {_LEAD_INS[fields['lead_in']]}\n\n{INVOICES_GEN.render(fields['invoice'])}"

    def step_references(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The reference of each step of the demo's ``support`` pipeline, by step id."""
        inv = fields["invoice"]
        invoice = INVOICES_GEN.answer(inv)
        return {
            "intent": INTENTS_GEN.answer(fields["message"]),
            "fields": invoice,
            "date": canonical_date(inv["year"], inv["month"], inv["day"]),
            "amount": invoice["total"],
        }

    def answer(self, fields: dict[str, Any]) -> dict[str, Any]:
        steps = self.step_references(fields)
        invoice = steps["fields"]
        return {
            "intent": steps["intent"],
            "invoice_number": invoice["invoice_number"],
            "date": steps["date"],
            "vendor": invoice["vendor"],
            "total": steps["amount"],
            "currency": invoice["currency"],
        }

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
        if kind not in self.resample_kinds:
            raise ConfigError(
                f"composed cannot re-sample {kind!r}; use one of {', '.join(self.resample_kinds)}"
            )
        INTENTS_GEN.resample(fields["message"], kind, rng)
        INVOICES_GEN.resample(fields["invoice"], kind, rng)
        return fields


GENERATOR = ComposedGenerator()
