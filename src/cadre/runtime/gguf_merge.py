"""Fold a LoRA update into a GGUF base: one model file that decodes without the per-layer adapter matmuls.

:func:`write_merged` is the writer (``cadre export --format gguf-merged`` uses it with a PEFT adapter's
tensors); :func:`merge_gguf_adapter` reads a llama.cpp GGUF LoRA adapter instead, so ``cadre serve`` can merge a
specialist's adapter over its base at load time. Written with the ``gguf`` package (numpy); no llama.cpp tool
is run (llama-cpp-python ships no merge function; llama.cpp's ``llama-export-lora`` is a separate C++ binary).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cadre.errors import ConfigError, ModelLoadError
from cadre.formats import open_gguf_weights, read_gguf_header
from cadre.runtime.gguf_adapters import check_adapter_fits
from cadre.runtime.trained_prompt import gguf_prompt_keys

__all__ = [
    "FILE_TYPE",
    "encode_tensor",
    "finish_file",
    "merge_gguf_adapter",
    "read_gguf_lora",
    "write_merged",
]

FILE_TYPE = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7}  # llama.cpp's LLAMA_FTYPE_* values

LoraPairs = dict[str, tuple[np.ndarray, np.ndarray]]
"""GGUF base-tensor name → (A (r, n_in), B (n_out, r)), float32."""


def encode_tensor(weight: np.ndarray, quant: str) -> tuple[np.ndarray, Any]:
    """(data, raw_dtype) for ``GGUFWriter.add_tensor``; ``weight`` is (rows, n_in) float32."""
    import gguf

    qtype = gguf.GGMLQuantizationType[quant]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if weight.shape[-1] % block:
        raise ConfigError(
            f"--quant {quant}: rows of {weight.shape[-1]} values are not a multiple of its block size {block}; "
            "use F16 or F32"
        )
    return gguf.quants.quantize(np.ascontiguousarray(weight, dtype=np.float32), qtype), qtype


def finish_file(writer: Any, tmp: Path, out: Path) -> None:
    """Write a ``GGUFWriter``'s file to ``tmp`` and move it to ``out`` in one step."""
    writer.write_header_to_file(tmp)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)


def _copy_field(writer: Any, field: Any) -> None:
    import gguf

    vtype = field.types[0]
    sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
    writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)


def _dense(t: Any) -> np.ndarray:
    """A reader tensor as float32 (rows, n_in): GGUF's ne = (n_in, n_out), numpy's order is the reverse."""
    import gguf

    weight = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
    return weight.reshape(int(t.shape[1]), int(t.shape[0]))


def write_merged(
    out: Path,
    base_path: Path,
    pairs: LoraPairs,
    scale: float,
    quant: str | None,
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write base + scale·(B @ A) on the adapted tensors, requantized (Q8_0 unless ``quant``); other tensors are
    copied as they are (or converted to ``quant`` when given). The file appears atomically.

    ``metadata``: string keys to add (replacing the base's value of the same key): the adapter's
    ``cadre.prompt.*`` keys, so the merged specialist is served with the prompt it was trained with.
    """
    extra = dict(metadata or {})
    import gguf

    arch = read_gguf_header(base_path, what="base model").metadata.get("general.architecture")
    if arch is None:
        raise ModelLoadError(f"{base_path}: not a model GGUF (no general.architecture)")
    reader = open_gguf_weights(base_path, what="base model")
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture" or field.name in extra:
            continue
        if field.name == "general.file_type":
            writer.add_uint32("general.file_type", FILE_TYPE[quant or "Q8_0"])
            continue
        _copy_field(writer, field)
    for key, value in extra.items():
        writer.add_string(key, value)
    target = gguf.GGMLQuantizationType[quant] if quant else None
    for t in reader.tensors:
        lora = pairs.get(t.name)
        if lora is None and (target is None or len(t.shape) < 2 or t.tensor_type == target):
            writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
            continue
        weight = _dense(t)
        if lora is not None:
            a, b = lora
            weight = weight + scale * (b @ a)
        data, raw = encode_tensor(weight, quant or "Q8_0")
        writer.add_tensor(t.name, data, raw_dtype=raw)
    try:
        finish_file(writer, tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def read_gguf_lora(adapter_path: Path) -> tuple[LoraPairs, float]:
    """The (A, B) pairs of a llama.cpp GGUF LoRA adapter and its scale (``adapter.lora.alpha`` ÷ rank, as
    llama.cpp applies it; 1 when the file has no alpha)."""
    header = read_gguf_header(adapter_path, what="adapter")
    reader = open_gguf_weights(adapter_path, what="adapter")
    tensors = {t.name: t for t in reader.tensors}
    pairs: LoraPairs = {}
    for name, t in tensors.items():
        if name.endswith(".lora_a"):
            target = name.removesuffix(".lora_a")
            pairs[target] = (_dense(t), _dense(tensors[target + ".lora_b"]))  # A (r, n_in), B (n_out, r)
    if not pairs:
        raise ModelLoadError(
            f"adapter {adapter_path} holds no LoRA tensors (*.lora_a/*.lora_b); re-export it"
        )
    ranks = {a.shape[0] for a, _ in pairs.values()}
    alpha = float(header.metadata.get("adapter.lora.alpha") or 0.0)
    if alpha and len(ranks) != 1:
        raise ModelLoadError(f"adapter {adapter_path}: tensors disagree on the rank ({sorted(ranks)})")
    # llama.cpp: scale = alpha / rank when alpha is set, else 1 (llama-adapter.cpp, llama_adapter_lora_init).
    return pairs, (alpha / ranks.pop()) if alpha else 1.0


def merge_gguf_adapter(base_path: Path, adapter_path: Path, out: Path, *, quant: str | None = None) -> Path:
    """Write ``base_path`` with the GGUF LoRA ``adapter_path`` folded in to ``out``: the adapted tensors in Q8_0,
    the others as the base stores them (``quant``: convert every 2-D tensor to that type instead). The adapter's
    training-time prompt (``cadre.prompt.*``) goes with it.

    Raises:
        ModelLoadError: either file is unreadable, or the adapter was made for another base.
    """
    adapter = read_gguf_header(adapter_path, what="adapter")
    check_adapter_fits(adapter, read_gguf_header(base_path))
    pairs, scale = read_gguf_lora(adapter_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_merged(out, base_path, pairs, scale, quant, metadata=gguf_prompt_keys(adapter.metadata))
    return out
