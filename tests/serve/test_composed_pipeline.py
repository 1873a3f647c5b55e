"""The demo's composed task served: the ``support`` pipeline (regex tools, a vote, a JSON extraction, two
normalizations) through a real server and the official openai client, answering one structured JSON object."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from cadre.demo.composed import support_pipeline
from cadre.ecosystem import parse_ecosystem
from cadre.synth import generate, get_generator

from .conftest import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """The three demo specialists as bare SmolLM2 with their system prompts (no adapters: answers are weak, but
    the label set and the JSON schema constrain decoding, so every step parses)."""
    specialists = [
        {"name": t, "base": "smollm2-135m", "system_prompt": get_generator(t).system_prompt}
        for t in ("intents", "invoices", "normalize")
    ]
    spec = parse_ecosystem(
        {
            "specialists": specialists,
            "generalist": {"model": "smollm2-135m"},
            "pipelines": {"support": support_pipeline()},
        },
        source="test",
    )
    with LiveServer(spec) as live:
        yield live


def test_the_composed_task_through_the_openai_client(server: LiveServer) -> None:
    record = next(generate(get_generator("composed"), split="test", n=1, seed=0))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    r = client.chat.completions.create(
        model="pipeline:support", messages=[{"role": "user", "content": record["text"]}]
    )
    answer = json.loads(r.choices[0].message.content or "")
    assert set(answer) == set(record["answer"])  # intent, invoice_number, date, vendor, total, currency
    assert answer["intent"] in get_generator("intents").labels
    assert isinstance(answer["total"], int | float) and isinstance(answer["vendor"], str)
    steps = {s["id"]: s for s in (r.model_extra or {})["cadre"]["steps"]}
    assert list(steps) == ["message", "document", "intent", "fields", "date", "amount"]
    assert all(s["status"] == "ok" for s in steps.values()), steps
    assert steps["intent"]["kind"] == "vote" and steps["intent"]["detail"]["k"] == 5
    assert steps["fields"]["model"] in ("invoices", "generalist") and steps["amount"]["model"] == "normalize"
    assert r.usage is not None and r.usage.prompt_tokens == sum(s["prompt_tokens"] for s in steps.values())
