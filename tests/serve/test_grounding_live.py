"""A specialist grounded in a knowledge corpus: passages go into its prompt, citations come back in `cadre`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from cadre.serve import parse_ecosystem

from .conftest import LiveServer

FACTS = {
    "warranty.md": "# Warranty\n\nThe Zephyr 3000 kettle has a warranty of 7 years from the date of purchase.\n",
    "shipping.md": "# Shipping\n\nOrders to Iceland ship by sea freight and take 12 business days.\n",
}


@pytest.fixture(scope="module")
def grounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("home")
    docs = tmp_path_factory.mktemp("docs")
    for name, text in FACTS.items():
        (docs / name).write_text(text)
    mp = pytest.MonkeyPatch()
    mp.setenv("CADRE_HOME", str(home))
    from cadre.knowledge import open_corpus

    open_corpus("kettle-faq", create=True).add([docs])
    spec = parse_ecosystem(
        {
            "specialists": [
                {
                    "name": "support",
                    "knowledge": {"corpus": "kettle-faq", "top_k": 1},
                    "system_prompt": "You answer questions about our kettles.",
                    "decoding": {"max_tokens": 12},
                }
            ],
            "server": {"fallback": "error"},
        }
    )
    try:
        with LiveServer(spec) as server:
            yield server
    finally:
        mp.undo()


@pytest.mark.slow
def test_answers_cite_the_passage_they_were_given(grounded: LiveServer) -> None:
    c = openai.OpenAI(base_url=f"{grounded.url}/v1", api_key="x", max_retries=0, timeout=120)
    r = c.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "How long is the Zephyr 3000 kettle warranty?"}],
    )
    citations = r.model_extra["cadre"]["citations"]  # type: ignore[index]
    assert len(citations) == 1
    assert Path(citations[0]["source"]).name == "warranty.md"
    assert {"chunk_id", "start", "end", "score", "index"} <= set(citations[0])
    stream = c.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "How long does shipping to Iceland take?"}],
        stream=True,
    )
    first = next(iter(stream))
    assert Path(first.model_extra["cadre"]["citations"][0]["source"]).name == "shipping.md"  # type: ignore[index]
    stream.close()
