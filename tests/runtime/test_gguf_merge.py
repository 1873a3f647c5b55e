"""Folding a GGUF LoRA adapter into a GGUF base (fast: a tiny GGUF written here) and the adapter-tax table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadre.errors import ModelLoadError
from cadre.formats import open_gguf_weights, read_gguf_header
from cadre.runtime.adapter_tax import adapter_shape, adapter_tax
from cadre.runtime.gguf_merge import merge_gguf_adapter, read_gguf_lora
from cadre.runtime.trained_prompt import TrainedPrompt, read_trained_prompt

N_IN, N_OUT, RANK = 64, 32, 4


def _base(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    import gguf

    w = {
        "blk.0.attn_q.weight": rng.standard_normal((N_OUT, N_IN)).astype(np.float32),
        "blk.0.ffn_up.weight": rng.standard_normal((N_OUT, N_IN)).astype(np.float32),
    }
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "model")
    writer.add_uint32("llama.block_count", 1)
    for name, t in w.items():
        writer.add_tensor(name, t)
    writer.add_tensor("output_norm.weight", np.ones(N_IN, dtype=np.float32))
    for step in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        step()
    writer.close()
    return w


def _adapter(
    path: Path,
    rng: np.random.Generator,
    *,
    alpha: float,
    n_in: int = N_IN,
    metadata: dict[str, str] | None = None,
) -> tuple[np.ndarray, ...]:
    import gguf

    a = rng.standard_normal((RANK, n_in)).astype(np.float32)  # (r, n_in)
    b = rng.standard_normal((N_OUT, RANK)).astype(np.float32)  # (n_out, r)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for key, value in (metadata or {}).items():
        writer.add_string(key, value)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", a)
    writer.add_tensor("blk.0.attn_q.weight.lora_b", b)
    for step in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        step()
    writer.close()
    return a, b


def test_merge_adds_the_scaled_update_and_copies_the_rest(tmp_path: Path) -> None:
    import gguf

    rng = np.random.default_rng(0)
    w = _base(tmp_path / "base.gguf", rng)
    a, b = _adapter(tmp_path / "lora.gguf", rng, alpha=8.0)
    pairs, scale = read_gguf_lora(tmp_path / "lora.gguf")
    assert scale == 8.0 / RANK  # llama.cpp's alpha / rank
    np.testing.assert_array_equal(pairs["blk.0.attn_q.weight"][0], a)

    out = merge_gguf_adapter(tmp_path / "base.gguf", tmp_path / "lora.gguf", tmp_path / "m" / "merged.gguf")
    reader = open_gguf_weights(out)
    tensors = {t.name: t for t in reader.tensors}
    q = tensors["blk.0.attn_q.weight"]
    assert q.tensor_type == gguf.GGMLQuantizationType.Q8_0
    merged = gguf.quants.dequantize(np.asarray(q.data), q.tensor_type).reshape(N_OUT, N_IN)
    expected = w["blk.0.attn_q.weight"] + scale * (b @ a)
    assert np.abs(merged - expected).max() < 0.02 * np.abs(expected).max()  # Q8_0 rounding only
    assert np.abs(merged - w["blk.0.attn_q.weight"]).max() > 1.0  # the update is really there
    np.testing.assert_array_equal(np.asarray(tensors["blk.0.ffn_up.weight"].data), w["blk.0.ffn_up.weight"])
    header = read_gguf_header(out)
    assert header.kind == "model" and header.architecture == "llama"
    assert read_trained_prompt(out) is None  # the adapter recorded no training-time prompt: none is added


def test_merge_carries_the_adapters_training_time_prompt(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    _base(tmp_path / "base.gguf", rng)
    prompt = TrainedPrompt("keep", "Label the ticket.", "Label the ticket.")
    _adapter(tmp_path / "lora.gguf", rng, alpha=8.0, metadata=prompt.to_gguf())
    out = merge_gguf_adapter(tmp_path / "base.gguf", tmp_path / "lora.gguf", tmp_path / "merged.gguf")
    assert read_trained_prompt(out) == prompt


def test_merge_refuses_an_adapter_for_another_base(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _base(tmp_path / "base.gguf", rng)
    _adapter(tmp_path / "lora.gguf", rng, alpha=8.0, n_in=N_IN * 2)
    with pytest.raises(ModelLoadError, match="made for another base"):
        merge_gguf_adapter(tmp_path / "base.gguf", tmp_path / "lora.gguf", tmp_path / "merged.gguf")
    assert not (tmp_path / "merged.gguf").exists()


def test_adapter_tax_comes_from_the_measured_shape(tmp_path: Path, lora_pair: dict[str, Path]) -> None:
    shape = adapter_shape(lora_pair["alpha"])  # SmolLM2, rank 8, all 7 projections, 30 layers
    assert (shape.rank, shape.width, shape.layers, len(shape.modules)) == (8, 576, 30, 7)
    assert shape.label == "r8 on all 7 projections (30 layers)"
    assert adapter_tax(shape) == 1.13
    rng = np.random.default_rng(2)
    _adapter(tmp_path / "lora.gguf", rng, alpha=8.0)  # a shape nobody measured
    assert adapter_tax(adapter_shape(tmp_path / "lora.gguf")) is None
