"""The exported GGUF adapter changes llama.cpp's logits the way PEFT changes transformers' (bundled SmolLM2).

The statistic is the correlation of the adapter's effect, (cpp_lora − cpp_base) vs (hf_lora − hf_base), over
every position of two chat prompts. The base weights differ (Q4_1 in llama.cpp, the same values dequantized in
transformers), so the effect is compared rather than the raw logits. Without the q/k row permutation the
adapter loads and runs but fails the gate: that is the negative test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "Classify the message."},
        {"role": "user", "content": "My card was charged twice."},
    ],
]


def _cpp_logits(model_path: Path, token_lists: list[list[int]], lora: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(model_path),
        lora_path=str(lora) if lora else None,
        n_ctx=256,
        logits_all=True,
        n_threads=2,
        verbose=False,
    )
    try:
        rows = []
        for toks in token_lists:
            llm.reset()
            llm.eval(toks)
            rows.append(np.array(llm.scores[: len(toks)], dtype=np.float32))
        return np.concatenate(rows)
    finally:
        llm.close()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    import torch
    from peft import LoraConfig, get_peft_model

    from cadre.train.base import describe_base, load_base_model, load_tokenizer, resolve_base

    ref = resolve_base("smollm2-135m")
    tok = load_tokenizer(ref)
    model = load_base_model(ref)
    token_lists = [
        tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True), add_special_tokens=False)[
            "input_ids"
        ]
        for p in PROMPTS
    ]

    def hf_logits(m) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([m(torch.tensor([t])).logits[0].float().numpy() for t in token_lists])

    hf_base = hf_logits(model)
    torch.manual_seed(1)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False)
    )
    hf_lora = hf_logits(peft_model)
    adapter = tmp_path_factory.mktemp("random-lora")
    peft_model.save_pretrained(str(adapter))
    (adapter / "cadre.json").write_text(json.dumps({"base": describe_base(ref, model.config).to_json()}))
    cpp_base = _cpp_logits(ref.path, token_lists)
    return ref, adapter, token_lists, hf_base, hf_lora, cpp_base


def test_exported_adapter_matches_peft_and_unpermuted_fails(setup) -> None:
    from cadre.train.export import export_adapter

    ref, adapter, token_lists, hf_base, hf_lora, cpp_base = setup
    assert _corr(cpp_base, hf_base) > 0.99  # the same weights on both sides (Q4_1 vs its dequantization)
    effect = hf_lora - hf_base
    assert _corr(hf_lora, hf_base) < 0.95  # the adapter's effect is large, so the test has power

    good = export_adapter(adapter, "gguf-adapter")
    cpp_lora = _cpp_logits(ref.path, token_lists, lora=good)
    assert _corr(cpp_lora - cpp_base, effect) >= 0.99

    naive = export_adapter(adapter, "gguf-adapter", out=adapter / "unpermuted.gguf", _permute_qk=False)
    cpp_naive = _cpp_logits(ref.path, token_lists, lora=naive)
    print(
        f"parity: permuted {_corr(cpp_lora - cpp_base, effect):.4f}, unpermuted {_corr(cpp_naive - cpp_base, effect):.4f}"
    )
    assert _corr(cpp_naive - cpp_base, effect) < 0.97  # loads and runs, but fails the parity gate


def test_merged_gguf_answers_like_the_adapter(setup) -> None:
    from cadre.train.export import export_adapter

    ref, adapter, token_lists, hf_base, hf_lora, cpp_base = setup
    with_adapter = _cpp_logits(
        ref.path, token_lists, lora=export_adapter(adapter, "gguf-adapter", quant="F16")
    )
    merged = _cpp_logits(export_adapter(adapter, "gguf-merged"), token_lists)
    assert _corr(merged, with_adapter) >= 0.99
    assert _corr(merged - cpp_base, hf_lora - hf_base) >= 0.98
    agree = float(np.mean(merged.argmax(-1) == with_adapter.argmax(-1)))
    print(f"merged: corr vs adapter {_corr(merged, with_adapter):.4f}, top-1 agreement {agree:.3f}")
    assert agree >= 0.9, f"top-1 agreement of merged vs adapter over positions: {agree:.2f}"
