"""Write small random llama.cpp LoRA adapters (GGUF) for tests and benchmarks, shaped after a real base."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cadre.formats import read_gguf_header

DEFAULT_TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def write_random_lora(
    base_gguf: Path,
    out: Path,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    targets: tuple[str, ...] = DEFAULT_TARGETS,
    scale: float = 0.05,
    seed: int = 0,
    architecture: str | None = None,
    shape_factor: int = 1,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A random LoRA over every layer of ``base_gguf`` (``shape_factor`` != 1 makes one for another base);
    ``metadata``: extra string keys (e.g. the ``cadre.prompt.*`` keys `cadre export` writes)."""
    import gguf

    base = read_gguf_header(base_gguf)
    n_layer = int(base.metadata[f"{base.architecture}.block_count"])
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(out), architecture or base.architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for key, value in (metadata or {}).items():
        writer.add_string(key, value)
    for i in range(n_layer):
        for t in targets:
            name = f"blk.{i}.{t}.weight"
            n_in, n_out = base.tensors[name]  # GGUF order (ne0 = input dim)
            n_in *= shape_factor
            a = (rng.standard_normal((rank, n_in)) * scale).astype(np.float32)  # (r, n_in)
            b = (rng.standard_normal((n_out, rank)) * scale).astype(np.float32)  # (n_out, r)
            writer.add_tensor(f"{name}.lora_a", a)
            writer.add_tensor(f"{name}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
