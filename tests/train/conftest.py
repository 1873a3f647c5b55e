"""Fixtures for the train tests: the bundled SmolLM2 tokenizer on a tiny random llama (fast), and task data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

LABELS = ("billing", "refund", "login", "shipping")


@pytest.fixture(scope="session")
def smollm_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled SmolLM2 tokenizer (with its chat template), read from the GGUF once per session."""
    from transformers import AutoTokenizer

    from cadre.runtime.bundled import bundled_model_path

    gguf = bundled_model_path("smollm2-135m")
    out = tmp_path_factory.mktemp("smollm-tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tokenizer(smollm_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm_tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, smollm_tokenizer_dir: Path) -> Path:
    """A 2-layer random llama (hidden 32, 4 heads, 2 KV heads) with the real SmolLM2 tokenizer, as a model dir."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    for f in smollm_tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def label_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        text = f"ticket {rng.randint(100, 999)}: a question about {label} for account {rng.randint(1, 99)}"
        rows.append(
            {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}]}
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def chat_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", label_rows(48))
