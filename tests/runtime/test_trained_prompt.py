"""The training-time system prompt: the rules that apply it to a request, and reading it from an adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lora_files import write_random_lora

from cadre.runtime.bundled import bundled_model_path
from cadre.runtime.trained_prompt import GGUF_PROMPT_KEYS, TrainedPrompt, read_trained_prompt

LONG = "Classify the request into one of: billing, refund, login, shipping. Answer with the name only."
USER = {"role": "user", "content": "where is my parcel"}


def test_apply_gives_a_request_the_prompt_the_specialist_learned_with() -> None:
    replaced = TrainedPrompt("replace", "Intent?", LONG)
    # no system message: the trained one is added
    assert replaced.apply([USER]) == [{"role": "system", "content": "Intent?"}, USER]
    # the data file's constant prompt (the portable form): swapped for the trained one
    assert replaced.apply([{"role": "system", "content": LONG}, USER]) == [
        {"role": "system", "content": "Intent?"},
        USER,
    ]
    # a client's own system prompt is its choice
    own = [{"role": "system", "content": "Be brief."}, USER]
    assert replaced.apply(own) == own
    dropped = TrainedPrompt("drop", None, LONG)
    assert dropped.apply([{"role": "system", "content": LONG}, USER]) == [USER]
    assert dropped.apply([USER]) == [USER]
    kept = TrainedPrompt("keep", LONG, LONG)
    assert kept.apply([USER]) == [{"role": "system", "content": LONG}, USER]
    assert kept.apply([{"role": "system", "content": LONG}, USER]) == [
        {"role": "system", "content": LONG},
        USER,
    ]
    assert TrainedPrompt("keep", None, None).apply([USER]) == [USER]


def test_read_from_a_peft_folder_and_a_gguf_adapter(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    assert read_trained_prompt(folder) is None  # nothing recorded
    record = {"mode": "replace", "system": "Intent?", "data_system": LONG}
    (folder / "cadre.json").write_text(json.dumps({"base": {}, "prompt": record}), encoding="utf-8")
    assert read_trained_prompt(folder) == TrainedPrompt("replace", "Intent?", LONG)

    base = bundled_model_path("smollm2-135m")
    plain = write_random_lora(base, tmp_path / "plain.gguf", rank=2, targets=("attn_q",))
    assert read_trained_prompt(plain) is None
    keys = {GGUF_PROMPT_KEYS["mode"]: "drop", GGUF_PROMPT_KEYS["data_system"]: LONG}
    tagged = write_random_lora(base, tmp_path / "tagged.gguf", rank=2, targets=("attn_q",), metadata=keys)
    assert read_trained_prompt(tagged) == TrainedPrompt("drop", None, LONG)


@pytest.mark.slow  # merges into the bundled model and loads it twice in llama.cpp: 19 s at load average 10
def test_a_merged_specialist_carries_its_prompt_and_llamacpp_applies_it(tmp_path: Path) -> None:
    from cadre.runtime.gguf_merge import merge_gguf_adapter
    from cadre.runtime.llamacpp import LlamaCppBackend

    base = bundled_model_path("smollm2-135m")
    keys = TrainedPrompt("replace", "Intent?", LONG).to_gguf()
    assert keys == {
        GGUF_PROMPT_KEYS["mode"]: "replace",
        GGUF_PROMPT_KEYS["system"]: "Intent?",
        GGUF_PROMPT_KEYS["data_system"]: LONG,
    }
    adapter = write_random_lora(base, tmp_path / "intents.gguf", rank=2, targets=("attn_q",), metadata=keys)
    merged = merge_gguf_adapter(base, adapter, tmp_path / "merged.gguf")
    assert read_trained_prompt(merged) == TrainedPrompt("replace", "Intent?", LONG)

    short = {"role": "system", "content": "Intent?"}
    with (
        LlamaCppBackend(merged, n_ctx=256, n_parallel=1) as specialist,
        LlamaCppBackend(base, n_ctx=256) as bare,
    ):
        expected = bare.render_chat([short, USER])
        assert specialist.render_chat([USER]) == expected  # no system message: the trained one is added
        assert specialist.render_chat([{"role": "system", "content": LONG}, USER]) == expected  # swapped
        own = [{"role": "system", "content": "Be brief."}, USER]
        assert specialist.render_chat(own) == bare.render_chat(own)  # a client's own prompt is left alone
        assert bare.render_chat([USER]) != expected  # the bundled base carries no prompt
