"""Fixtures for the runtime tests: the bundled SmolLM2 GGUF, a tiny random llama in transformers, random LoRA
adapters, and a real OpenAI-compatible server (llama-cpp-python's) on a loopback port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadre.runtime.bundled import bundled_model_path

sys.path.insert(0, str(Path(__file__).parent))

from lora_files import write_random_lora

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = (
    "the quick brown fox jumps over the lazy dog. invoices list a total amount due and a date. "
    "hello world, how are you today? the capital of france is paris. a b c d e f g h i j k l m n o p "
    "support tickets ask about billing refunds passwords and shipping. numbers 0 1 2 3 4 5 6 7 8 9 10 100"
)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return bundled_model_path("smollm2-135m")


@pytest.fixture(scope="session")
def lora_pair(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> dict[str, Path]:
    """Two random rank-8 adapters over SmolLM2 (all 7 linear modules of the 30 layers), strong enough to change
    the answer but not so strong that the model turns chaotic (then float noise flips tokens)."""
    d = tmp_path_factory.mktemp("loras")
    return {
        "alpha": write_random_lora(smollm2_gguf, d / "alpha.gguf", seed=1, scale=0.03),
        "beta": write_random_lora(smollm2_gguf, d / "beta.gguf", seed=2, scale=0.06),
    }


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random llama with a byte-level BPE tokenizer trained here, saved as a HF folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def llama_server(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path, start_llama_server: Any
) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, serving SmolLM2; yields base_url."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with start_llama_server(smollm2_gguf, log, n_ctx=512) as base_url:
        yield base_url
