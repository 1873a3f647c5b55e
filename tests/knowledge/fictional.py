"""A generated corpus of invented facts (no model has seen them), in every supported format, with questions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .conftest import write_pdf


@dataclass(frozen=True)
class Question:
    text: str
    file: str  # the file that holds the answer
    answer: str  # a string found only in the right passage


MARKDOWN = """# The Zorblax Station Handbook

Welcome aboard. This handbook covers the station's reactor, its crew and the rules of the galley.

## Reactor

The Zorblax reactor runs on crystallized moonwater, harvested from the rings of Planet Quell every ninth Tuesday.
Its core temperature must stay below 1,740 kelvin; above that the coolant turns violet and the alarms sound.

## Crew

Captain Ilvane Mortescu commands the station. Her second officer is a sentient teapot named Brimble,
who keeps the duty rota and brews a tea called Dusk Lantern for the night shift.

## Galley rules

Nobody may cook fennel on Wednesdays. Leftover dumplings go to the hydroponics bay to feed the glow-moss.
"""

HTML = """<html><head><title>Glimmerfen Gazette</title><script>var tracker = 1;</script></head><body>
<h1>Glimmerfen</h1>
<p>Glimmerfen is a marsh town on the Ossory archipelago whose bridge is 413 meters long and painted teal.</p>
<h2>Trade</h2>
<p>The town's main export is pickled starfruit, shipped each autumn aboard the barge <em>Quiet Heron</em>.</p>
<h2>Festivals</h2>
<p>Every spring the Lantern Regatta is won by whoever floats a paper boat past the old mill first.</p>
</body></html>"""

TEXT = """Notes on the Varn engine.

The Varn engine idles at 440 revolutions per minute and was designed by the engineer Oksana Pellweather in the
town of Tessaly.

Its fuel is a blend of peat oil and distilled juniper, mixed in a ratio of seven to two.
"""

PDF_PAGES = [
    [
        "Annual report of the Hollowmere Beekeepers Guild.",
        "The guild keeps 86 hives on the slopes of Mount Ardent.",
    ],
    [
        "The guild's honey is flavoured by the blue saxifrage that flowers in June.",
        "Its treasurer is Corvin Alder.",
    ],
]

RECORDS = [
    {"id": "fact-001", "text": "The Pellucid Library of Nerath holds exactly 12,006 scrolls written in mirror script.",
     "topic": "libraries"},
    {"id": "fact-002", "text": "Snow in the valley of Umbrel falls upwards during the month of Frostmere.",
     "topic": "weather"},
    {"id": "fact-003", "text": "The chess champion of Karsk, Velma Ostrow, has never lost a game played at dawn.",
     "topic": "games"},
]  # fmt: skip

QUESTIONS = [
    Question("What does the Zorblax reactor run on?", "zorblax.md", "crystallized moonwater"),
    Question("Who is the second officer of Zorblax station?", "zorblax.md", "sentient teapot named Brimble"),
    Question("What is forbidden to cook on Wednesdays?", "zorblax.md", "fennel on Wednesdays"),
    Question("How long is the Glimmerfen bridge?", "glimmerfen.html", "413 meters"),
    Question("What does Glimmerfen export?", "glimmerfen.html", "pickled starfruit"),
    Question("At how many revolutions per minute does the Varn engine idle?", "varn.txt", "440 revolutions"),
    Question("How many hives does the Hollowmere guild keep?", "hollowmere.pdf", "86 hives"),
    Question("Who is the treasurer of the beekeepers guild?", "hollowmere.pdf", "Corvin Alder"),
    Question("How many scrolls are in the Pellucid Library?", "facts.jsonl", "12,006 scrolls"),
    Question("Which direction does snow fall in Umbrel?", "facts.jsonl", "falls upwards"),
]


def write_corpus(root: Path) -> Path:
    """Write the corpus files under ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zorblax.md").write_text(MARKDOWN)
    (root / "glimmerfen.html").write_text(HTML)
    (root / "varn.txt").write_text(TEXT)
    write_pdf(root / "hollowmere.pdf", PDF_PAGES)
    (root / "facts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return root
