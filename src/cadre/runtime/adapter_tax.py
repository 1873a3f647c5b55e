"""The adapter tax: how much slower a base decodes with an unmerged LoRA adapter, from the adapter's shape.

An unmerged adapter adds two small matmuls per adapted weight per token, so its cost depends on *which* modules
carry it (and little on the rank at these sizes). The factors below were measured, not modelled; a shape not
measured gets ``tax=None`` (the server then prints the shape and "not measured").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cadre.formats import read_gguf_header

__all__ = ["AdapterShape", "adapter_shape", "adapter_tax"]

_ATTN = frozenset({"attn_q", "attn_v"})
_ALL7 = frozenset({"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})

# Decode tokens/s of base ÷ base + one unmerged adapter, SmolLM2-135M Q4_1 in cadre's llama.cpp engine, batch 1,
# 1 thread, median of 5 (benchmarks/runtime_adapters.py --tax-only, 2026-12-02, /work/notes/adapter-tax.md).
# q+v measured 0.93-0.94 (no slowdown within noise), so it is recorded as 1.00.
# Keyed by (architecture, hidden size, modules, rank): SmolLM2-135M is a llama of hidden size 576.
_MEASURED: dict[tuple[str, int, frozenset[str], int], float] = {
    ("llama", 576, _ATTN, 8): 1.00,
    ("llama", 576, _ATTN, 16): 1.00,
    ("llama", 576, _ALL7, 8): 1.13,
    ("llama", 576, _ALL7, 16): 1.12,
}


@dataclass(frozen=True)
class AdapterShape:
    """What a LoRA adapter changes: the base architecture, the adapted module kinds and the rank."""

    architecture: str
    modules: frozenset[str]  # GGUF tensor kinds, e.g. {"attn_q", "attn_v"}
    rank: int
    width: int  # the smallest input size of an adapted weight: the model's hidden size
    layers: int  # blocks that carry at least one adapted weight

    @property
    def label(self) -> str:
        """Short text for logs, e.g. ``r16 on attn_q,attn_v (30 layers)``."""
        names = "all 7 projections" if self.modules == _ALL7 else ",".join(sorted(self.modules))
        return f"r{self.rank} on {names} ({self.layers} layers)"


def adapter_shape(path: str | Path) -> AdapterShape:
    """Read a GGUF LoRA adapter's shape from its header (no tensor data is read).

    Raises:
        ModelLoadError: the file is missing or not a GGUF file.
    """
    header = read_gguf_header(path, what="adapter")
    modules: set[str] = set()
    layers: set[str] = set()
    ranks: set[int] = set()
    widths: set[int] = set()
    for name, shape in header.tensors.items():
        if not name.endswith(".lora_a"):
            continue
        parts = name.split(".")  # blk.<i>.<kind>.weight.lora_a
        if len(parts) >= 4 and parts[0] == "blk":
            layers.add(parts[1])
            modules.add(parts[2])
        if len(shape) == 2:  # GGUF order: A is (n_in, r)
            widths.add(int(shape[0]))
            ranks.add(int(shape[1]))
    return AdapterShape(
        architecture=header.architecture,
        modules=frozenset(modules),
        rank=max(ranks, default=0),
        width=min(widths, default=0),
        layers=len(layers),
    )


def adapter_tax(shape: AdapterShape) -> float | None:
    """The measured decode slowdown (base ÷ with adapter) of an adapter of this shape, None when not measured."""
    return _MEASURED.get((shape.architecture, shape.width, shape.modules, shape.rank))
