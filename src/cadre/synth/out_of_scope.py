"""Out-of-scope requests: what none of the specialists should answer, so the router sends it to the generalist.

General knowledge, writing, coding, advice and small talk, plus near misses that share words with the in-scope
tasks (invoices, orders, dates, money) but ask for something else.
"""

from __future__ import annotations

import random
from typing import Any

from cadre.errors import ConfigError

__all__ = ["GENERATOR", "OutOfScopeGenerator"]

_TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of {country}?", ("country",)),
    ("Write a short poem about {topic}.", ("topic",)),
    ("Explain how {science} works in simple terms.", ("science",)),
    ("How do I {code_task} in {language}?", ("code_task", "language")),
    ("Give me a recipe for {dish}.", ("dish",)),
    ("What are some good things to do in {city} for a weekend?", ("city",)),
    ("Can you summarize the plot of {book}?", ("book",)),
    ("Translate '{phrase}' into {lang_human}.", ("phrase", "lang_human")),
    ("What's a good name for a {pet}?", ("pet",)),
    ("How many calories are in a {food}?", ("food",)),
    ("Tell me a joke about {topic}.", ("topic",)),
    ("What is the difference between {pair}?", ("pair",)),
    ("Help me write a cover letter for {job} position.", ("job",)),
    ("Who invented the {invention}?", ("invention",)),
    ("Why is the sky blue?", ()),
    ("What should I consider when buying a used car?", ()),
    ("How can I improve my sleep?", ()),
    ("Recommend a few {genre} movies from the last decade.", ("genre",)),
    ("Solve for x: {a}x + {b} = {c}", ("a", "b", "c")),
    ("What's the weather usually like in {city} in {month}?", ("city", "month")),
    # near misses: in-scope vocabulary, out-of-scope request
    ("What is the history of the invoice as a business document?", ()),
    ("Explain the difference between an invoice and a purchase order in accounting.", ()),
    ("How do I write a polite email asking my landlord to fix the {appliance}?", ("appliance",)),
    ("What day of the week is best for launching a {product_kind}?", ("product_kind",)),
    ("Why do some countries write dates with the day first?", ()),
    ("How should a small business decide its payment terms?", ()),
    ("Is it better to pay off a credit card or save {amount_words}?", ("amount_words",)),
    ("Write a tweet announcing our new {product_kind}.", ("product_kind",)),
    ("How do I start a subscription box business?", ()),
    ("What are common customer service interview questions?", ()),
    ("Draft a birthday message for my colleague {first_name}.", ("first_name",)),
    ("What does {job} do all day?", ("job",)),
)

_SLOTS: dict[str, tuple[str, ...]] = {
    "country": (
        "Portugal",
        "Canada",
        "Kenya",
        "Japan",
        "Chile",
        "Norway",
        "Vietnam",
        "Morocco",
        "Peru",
        "Finland",
    ),
    "topic": (
        "autumn",
        "the ocean",
        "coffee",
        "city lights",
        "friendship",
        "mountains",
        "rain",
        "robots",
        "cats",
    ),
    "science": (
        "photosynthesis",
        "a rainbow",
        "vaccination",
        "an electric motor",
        "GPS",
        "the tides",
        "a refrigerator",
        "compound interest",
        "nuclear fusion",
        "the immune system",
    ),
    "code_task": (
        "reverse a string",
        "read a CSV file",
        "sort a list of dictionaries",
        "make an HTTP request",
        "parse command-line arguments",
        "write a unit test",
        "remove duplicates from a list",
    ),
    "language": ("Python", "JavaScript", "Rust", "Go", "Java", "C#", "Ruby"),
    "dish": (
        "banana bread",
        "vegetable curry",
        "pancakes",
        "lentil soup",
        "guacamole",
        "risotto",
        "shakshuka",
    ),
    "city": ("Lisbon", "Kyoto", "Montreal", "Edinburgh", "Cape Town", "Buenos Aires", "Prague", "Seoul"),
    "book": ("Moby-Dick", "Pride and Prejudice", "The Odyssey", "Frankenstein", "Don Quixote", "Dracula"),
    "phrase": ("good morning", "where is the train station", "thank you very much", "see you tomorrow"),
    "lang_human": ("Spanish", "French", "German", "Italian", "Japanese", "Portuguese"),
    "pet": ("golden retriever", "black cat", "parrot", "hamster", "goldfish", "rabbit"),
    "food": ("banana", "slice of pizza", "boiled egg", "bagel", "cup of rice", "avocado"),
    "pair": (
        "a virus and a bacterium",
        "weather and climate",
        "RAM and storage",
        "stocks and bonds",
        "a crocodile and an alligator",
        "speed and velocity",
    ),
    "job": (
        "a data analyst",
        "a nurse",
        "a product manager",
        "an electrician",
        "a teacher",
        "a graphic designer",
    ),
    "invention": ("telephone", "printing press", "light bulb", "bicycle", "World Wide Web", "microwave oven"),
    "genre": ("science fiction", "comedy", "documentary", "thriller", "animated"),
    "a": tuple(str(i) for i in range(2, 10)),
    "b": tuple(str(i) for i in range(1, 20)),
    "c": tuple(str(i) for i in range(20, 60)),
    "month": ("January", "April", "July", "October"),
    "appliance": ("heater", "dishwasher", "leaking tap", "broken window", "washing machine"),
    "product_kind": ("mobile app", "podcast", "coffee shop", "newsletter", "board game"),
    "amount_words": ("a few hundred dollars", "my bonus", "for a holiday"),
    "first_name": ("Maria", "Tom", "Aisha", "Kenji", "Lucas", "Sofia"),
}


class OutOfScopeGenerator:
    """Requests no specialist should answer (route: None → the generalist)."""

    name = "out_of_scope"
    kind = "out_of_scope"
    description = (
        "Out-of-scope requests (general questions, writing, coding, near misses) for the generalist."
    )
    metric = "routing"
    labels = None
    resample_kinds = ("names",)
    system_prompt = "You are a helpful assistant."

    def sample_fields(self, rng: random.Random) -> dict[str, Any]:
        t = rng.randrange(len(_TEMPLATES))
        fields: dict[str, Any] = {"template": t}
        fields.update({slot: rng.choice(_SLOTS[slot]) for slot in _TEMPLATES[t][1]})
        fields["polite"] = rng.choice(("", "", "", "Quick question: ", "Hey, ", "Please, "))
        return fields

    def render(self, fields: dict[str, Any]) -> str:
        body = _TEMPLATES[fields["template"]][0].format(**fields)
        return fields["polite"] + (body[0].lower() + body[1:] if fields["polite"] else body)

    def answer(self, fields: dict[str, Any]) -> None:
        return None

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
        if kind != "names":
            raise ConfigError(f"out_of_scope cannot re-sample {kind!r}; use 'names'")
        for slot in _TEMPLATES[fields["template"]][1]:
            fields[slot] = rng.choice(_SLOTS[slot])
        return fields


GENERATOR = OutOfScopeGenerator()
