"""transformers specifics: PEFT adapters over one base, chosen per request, checked before loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import ModelLoadError
from cadre.runtime import SamplingParams, load_backend
from cadre.runtime.transformers_backend import TransformersBackend

P = SamplingParams(max_tokens=8, logprobs=True)
MSG = [{"role": "user", "content": "hello world"}]


def _peft_adapter(base_dir: Path, out: Path, *, seed: int, hidden: int | None = None) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if hidden is None:
        model = AutoModelForCausalLM.from_pretrained(base_dir)
    else:  # a different base: same family, other width
        cfg = LlamaConfig.from_pretrained(base_dir)
        cfg.hidden_size, cfg.intermediate_size = hidden, hidden * 2
        model = LlamaForCausalLM(cfg)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(20.0)  # make the random update big enough to change a tiny model's argmax
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("peft")
    return {
        "one": _peft_adapter(tiny_llama_dir, d / "one", seed=1),
        "two": _peft_adapter(tiny_llama_dir, d / "two", seed=2),
    }


def test_peft_adapters_per_request(tiny_llama_dir: Path, adapters: dict[str, Path]) -> None:
    b = load_backend(str(tiny_llama_dir), adapters=dict(adapters), n_ctx=256)
    assert isinstance(b, TransformersBackend)
    assert b.adapters() == ["one", "two"]
    base = b.chat(MSG, P)
    one = b.chat(MSG, P, adapter="one")
    two = b.chat(MSG, P, adapter="two")
    assert base.logprobs and one.logprobs and two.logprobs
    firsts = {base.logprobs[0].logprob, one.logprobs[0].logprob, two.logprobs[0].logprob}
    assert len(firsts) == 3
    assert b.chat(MSG, P).text == base.text  # disable_adapter really gives back the base
    b.close()


def test_hot_add_and_refuse_another_base(
    tiny_llama_dir: Path, adapters: dict[str, Path], tmp_path: Path
) -> None:
    b = load_backend(str(tiny_llama_dir), n_ctx=256)
    b.load_adapter("one", adapters["one"])
    assert b.adapters() == ["one"]
    wide = _peft_adapter(tiny_llama_dir, tmp_path / "wide", seed=3, hidden=48)
    with pytest.raises(ModelLoadError, match="made for another base"):
        b.load_adapter("wide", wide)
    with pytest.raises(ModelLoadError, match="not a PEFT adapter folder"):
        b.load_adapter("empty", tmp_path)
    b.close()


@pytest.mark.slow
def test_bundled_gguf_through_transformers_matches_llamacpp() -> None:
    """The same SmolLM2 GGUF, dequantized by transformers (gguf_file=), answers like llama.cpp."""
    hf = load_backend("transformers:smollm2-135m", n_ctx=512)
    cpp = load_backend("smollm2-135m", n_ctx=512, n_threads=1)
    p = SamplingParams(max_tokens=4, logprobs=True)
    a = hf.complete("The capital of France is", p)
    c = cpp.complete("The capital of France is", p)
    assert a.text.strip().startswith("Paris") and c.text.strip().startswith("Paris")
    assert a.logprobs and c.logprobs
    assert a.logprobs[0].logprob == pytest.approx(c.logprobs[0].logprob, abs=0.3)
    hf.close()
    cpp.close()
