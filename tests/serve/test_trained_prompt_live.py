"""A specialist is served with the system prompt it was trained with, read from its adapter's metadata.

Over a real socket with the official openai client: the ecosystem gives the specialist no system prompt; its
GGUF adapter carries ``cadre.prompt.*`` keys as `cadre export` writes them (here: the data's long label-list
prompt replaced by a short one in training). The exact prompt-token count shows which prompt the model saw.
"""

from __future__ import annotations

from pathlib import Path

import openai

from cadre.runtime.bundled import bundled_model_path
from cadre.runtime.trained_prompt import GGUF_PROMPT_KEYS
from cadre.serve import parse_ecosystem
from runtime.lora_files import write_random_lora  # tests/runtime helper (random GGUF LoRA for SmolLM2)

from .conftest import LiveServer

LONG = "Classify the request into one of: billing, refund, login, shipping. Answer with the name only."
SHORT = "Intent?"


def test_the_training_time_prompt_is_applied_at_serving_time(tmp_path: Path) -> None:
    keys = {
        GGUF_PROMPT_KEYS["mode"]: "replace",
        GGUF_PROMPT_KEYS["system"]: SHORT,
        GGUF_PROMPT_KEYS["data_system"]: LONG,
    }
    write_random_lora(
        bundled_model_path("smollm2-135m"),
        tmp_path / "intents.gguf",
        rank=2,
        targets=("attn_q",),
        metadata=keys,
    )
    spec = parse_ecosystem(
        {
            "specialists": [
                {"name": "intents", "adapter": "intents.gguf", "decoding": {"max_tokens": 2}},
                {"name": "plain", "decoding": {"max_tokens": 2}},
            ],
            "server": {"fallback": "error"},
        },
        source="test",
        base_dir=tmp_path,
    )
    with LiveServer(spec) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0, timeout=120)
        backend = live.gateway.served.workers[live.gateway.snapshot.targets["intents"].worker_key].backend

        def prompt_tokens(model: str, messages: list[dict[str, str]]) -> int:
            r = client.chat.completions.create(model=model, messages=messages, max_tokens=1)  # type: ignore[arg-type]
            assert r.usage is not None
            return r.usage.prompt_tokens

        def count(messages: list[dict[str, str]]) -> int:
            text = backend.render_chat(messages)
            return len(backend.tokenize(text, add_special=False, parse_special=True))

        user = {"role": "user", "content": "where is my parcel"}
        short, long = {"role": "system", "content": SHORT}, {"role": "system", "content": LONG}
        # the three prompts differ in length, so the count tells which one the model saw
        assert len({count([short, user]), count([long, user]), count([user])}) == 3
        # no system message: the trained prompt is added; the data file's prompt: swapped for the trained one
        assert prompt_tokens("intents", [user]) == count([short, user])
        assert prompt_tokens("intents", [long, user]) == count([short, user])
        # a client's own system prompt is left alone; a specialist without an adapter is untouched
        own = {"role": "system", "content": "Be brief."}
        assert prompt_tokens("intents", [own, user]) == count([own, user])
        assert prompt_tokens("plain", [long, user]) == count([long, user])
        assert backend.adapter_prompt(live.gateway.snapshot.targets["intents"].adapter).system == SHORT
