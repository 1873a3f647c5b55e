"""Support-message intent triage: a customer message in, one of ten intent labels out (classification).

Variety comes from many hand-written phrasings per intent, slots (order numbers, products, amounts, dates),
optional greetings, context sentences and sign-offs, and typo/casing noise. Some intents are deliberately close
(cancel an order vs a subscription; a refund vs a damaged item; a payment failure vs an invoice copy).
"""

from __future__ import annotations

import random
from typing import Any

from cadre.errors import ConfigError
from cadre.synth._formats import MONTHS
from cadre.synth._noise import apply_noise
from cadre.synth._vocab import CUSTOMER_NAMES, PRODUCTS

__all__ = ["GENERATOR", "INTENTS", "IntentGenerator"]

# intent -> phrasings; slots: {order} {product} {amount} {date} {email} {days}
INTENTS: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Where is my order {order}? It still hasn't arrived.",
        "Can you tell me when order {order} will be delivered?",
        "I ordered a {product} on {date} and the tracking hasn't updated in {days} days.",
        "What's the status of my order {order}?",
        "My {product} was supposed to arrive {days} days ago. Any update on {order}?",
        "Has order {order} shipped yet?",
        "The tracking link for {order} says 'label created' since {date}. Is it on its way?",
        "Any idea when I'll get the {product}? Order number is {order}.",
        "I'm still waiting for my package, order {order}. Can you check where it is?",
        "Is there a delay with deliveries? My {product} (order {order}) is late.",
    ),
    "cancel_order": (
        "Please cancel order {order}, I placed it by mistake.",
        "I want to cancel my order for the {product} before it ships.",
        "Can I still cancel order {order}? I ordered it on {date}.",
        "I changed my mind about the {product}, please cancel the order {order}.",
        "Cancel {order} please, I found it cheaper elsewhere.",
        "I accidentally ordered two {product}s, can you cancel one of them? Order {order}.",
        "How do I cancel an order I placed {days} days ago? It's {order}.",
        "Stop order {order} from shipping, I no longer need it.",
        "I'd like to call off my purchase of the {product} (order {order}).",
    ),
    "refund_request": (
        "I returned the {product} on {date} and still haven't received my refund of {amount}.",
        "I'd like a refund for order {order}, the {product} isn't what I expected.",
        "When will I get my money back for {order}? You received the return {days} days ago.",
        "Please refund the {amount} for the {product}, I sent it back.",
        "Can I get a refund instead of store credit for order {order}?",
        "The {product} didn't fit, how do I get my {amount} back?",
        "I want my money back for the {product}, it's not as described.",
        "My return for {order} was delivered to you on {date}. Where is the refund?",
        "Requesting a full refund of {amount} for order {order}.",
    ),
    "damaged_item": (
        "The {product} arrived broken. Order {order}.",
        "My {product} came with a cracked screen, what can you do?",
        "I received the wrong item: I ordered a {product} but got something else. Order {order}.",
        "The box was crushed and the {product} inside is damaged.",
        "Half of the parts for the {product} are missing from the package.",
        "The {product} from order {order} stopped working after {days} days.",
        "You sent me a used {product}, it has scratches all over it.",
        "The {product} I received is a different colour than the one I ordered ({order}).",
        "My order {order} arrived today but the {product} is defective.",
    ),
    "change_address": (
        "I need to change the delivery address for order {order}.",
        "I moved last week, can you ship {order} to my new address instead?",
        "Please update the shipping address on my order for the {product}.",
        "Wrong address on order {order}! The flat number is missing. Can you fix it?",
        "Can you redirect my package {order} to my office instead of my home?",
        "I typed the wrong postcode for order {order}, how do I correct it?",
        "Is it possible to change where the {product} gets delivered? Order {order}.",
        "Please send order {order} to my parents' address, I'll be away.",
    ),
    "payment_issue": (
        "My card was declined but I was still charged {amount}.",
        "I was charged twice for order {order}, {amount} each time.",
        "The checkout keeps failing when I try to pay for the {product}.",
        "Why was my card charged {amount} on {date}? I didn't order anything.",
        "The payment page gives an error every time I enter my card details.",
        "PayPal says the payment for {order} went through, but your site says it failed.",
        "There's a pending charge of {amount} on my account that never cleared.",
        "I can't complete my purchase, the bank says the transaction was blocked.",
        "You took {amount} from my account for an order that was cancelled.",
    ),
    "account_access": (
        "I can't log in to my account, it says my password is wrong.",
        "The password reset email never arrives at {email}.",
        "My account got locked after too many login attempts.",
        "How do I reset my password? I forgot it.",
        "I'm not receiving the verification code to sign in.",
        "Someone changed the email on my account, I can't get in anymore.",
        "I want to change the email on my account from {email} to a new one.",
        "Login keeps failing with 'account not found' but I have an account under {email}.",
        "Two-factor authentication is stuck, I changed phones and can't log in.",
    ),
    "cancel_subscription": (
        "Please cancel my monthly subscription, I don't use it anymore.",
        "How do I stop the automatic renewal of my membership?",
        "I want to unsubscribe from the premium plan before it renews on {date}.",
        "Cancel my subscription and don't charge me the {amount} next month.",
        "I'd like to end my membership, it renews every month for {amount}.",
        "Turn off auto-renew on my account please.",
        "How can I downgrade to the free plan and stop paying {amount} a month?",
        "I signed up for the trial on {date} and want to cancel before it starts charging.",
    ),
    "invoice_request": (
        "Can you send me an invoice for order {order}? I need it for my expenses.",
        "I need a VAT receipt for the {product} I bought on {date}.",
        "Please email a copy of the invoice for {order} to {email}.",
        "My company needs an invoice with our business name for order {order}.",
        "Where can I download the receipt for my purchase of {amount}?",
        "The invoice for {order} has the wrong billing name, can you reissue it?",
        "Could I get an itemized receipt for order {order}?",
        "I lost the invoice for the {product}, can you resend it?",
    ),
    "product_question": (
        "Is the {product} available in other colours?",
        "Does the {product} come with a warranty?",
        "Will the {product} be back in stock soon?",
        "What are the dimensions of the {product}?",
        "Is the {product} compatible with older models?",
        "Do you ship the {product} internationally?",
        "What's the difference between the two versions of the {product}?",
        "Is the {product} suitable for outdoor use?",
        "How long does the battery of the {product} last?",
    ),
}

_GREETINGS = ("", "", "", "Hi, ", "Hello, ", "Hey there, ", "Good morning, ", "Hi team, ", "Dear support, ")
_CONTEXT = (
    "",
    "",
    "",
    "",
    " This is my second message about this.",
    " I've been a customer for {years} years.",
    " I'm quite frustrated.",
    " It's urgent.",
    " I tried the help page already.",
    " Thanks in advance.",
)
_SIGNOFFS = (
    "",
    "",
    "",
    " Thanks!",
    " Thank you.",
    " Regards, {name}",
    " - {name}",
    " Cheers",
    " Please help.",
)


def _order_number(rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"#{rng.randrange(10000, 99999)}"
    if style == 1:
        return f"ORD-{rng.randrange(100000, 999999)}"
    if style == 2:
        return f"{rng.randrange(100, 999)}-{rng.randrange(1000000, 9999999)}"
    return f"#A{rng.randrange(1000, 9999)}"


def _amount(rng: random.Random) -> str:
    value = rng.randrange(500, 50000) / 100
    return rng.choice(("${:.2f}", "€{:.2f}", "£{:.2f}", "{:.2f} USD")).format(value)


def _date(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{MONTHS[rng.randrange(12)]} {rng.randrange(1, 29)}",
            f"the {rng.randrange(1, 29)}th",
            "Monday",
            "last Friday",
            "yesterday",
            f"{rng.randrange(1, 13)}/{rng.randrange(1, 29)}",
        )
    )


class IntentGenerator:
    """Support-message intent triage (10 intents)."""

    name = "intents"
    kind = "classification"
    description = "Support-message intent triage: classify a customer message into one of ten intents."
    metric = "accuracy"
    labels = tuple(INTENTS)
    resample_kinds = ("numbers", "names")
    system_prompt = (
        "You triage customer support messages. Reply with exactly one intent label from this list: "
        + ", ".join(INTENTS)
        + "."
    )

    def sample_fields(self, rng: random.Random) -> dict[str, Any]:
        intent = rng.choice(self.labels)
        fields: dict[str, Any] = {
            "intent": intent,
            "template": rng.randrange(len(INTENTS[intent])),
            "greeting": rng.randrange(len(_GREETINGS)),
            "context": rng.randrange(len(_CONTEXT)),
            "signoff": rng.randrange(len(_SIGNOFFS)),
            "noise_seed": rng.randrange(2**31),
            "noise": rng.choice((0.0, 0.0, 0.2, 0.5)),
        }
        fields.update(self._numbers(rng))
        fields.update(self._names(rng))
        return fields

    @staticmethod
    def _numbers(rng: random.Random) -> dict[str, Any]:
        return {
            "order": _order_number(rng),
            "amount": _amount(rng),
            "date": _date(rng),
            "days": rng.randrange(2, 21),
            "years": rng.randrange(2, 12),
        }

    @staticmethod
    def _names(rng: random.Random) -> dict[str, Any]:
        name = rng.choice(CUSTOMER_NAMES)
        user = name.lower().replace(" ", ".").replace("'", "")
        return {
            "product": rng.choice(PRODUCTS),
            "name": name,
            "email": f"{user}@{rng.choice(('example.com', 'mail.test', 'inbox.example'))}",
        }

    def render(self, fields: dict[str, Any]) -> str:
        body = INTENTS[fields["intent"]][fields["template"]].format(**fields)
        greeting = _GREETINGS[fields["greeting"]]
        first = body.split(" ", 1)[0]
        if greeting and first[1:].islower() and not first.startswith("I'"):
            body = body[0].lower() + body[1:]  # "Hi, can you ..." but keep "I", "PayPal", "ORD-..."
        text = (
            greeting
            + body
            + _CONTEXT[fields["context"]].format(**fields)
            + _SIGNOFFS[fields["signoff"]].format(**fields)
        )
        return apply_noise(text, fields["noise_seed"], level=fields["noise"])

    def answer(self, fields: dict[str, Any]) -> str:
        return str(fields["intent"])

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
        if kind == "numbers":
            fields.update(self._numbers(rng))
        elif kind == "names":
            fields.update(self._names(rng))
        else:
            raise ConfigError(
                f"intents cannot re-sample {kind!r}; use one of {', '.join(self.resample_kinds)}"
            )
        return fields


GENERATOR = IntentGenerator()
