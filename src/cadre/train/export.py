"""Export a trained PEFT adapter: a llama.cpp LoRA GGUF, a merged (quantized) GGUF, or a clean PEFT copy.

Written with the ``gguf`` package's ``GGUFWriter``; no llama.cpp scripts are run.

The q/k trap: for llama-architecture models, llama.cpp's GGUF stores the rows of ``attn_q``/``attn_k`` in a
different order than HF checkpoints (llama.cpp's rotary embedding pairs dimensions (2i, 2i+1), HF's pairs
(i, i + d/2)); ``convert_hf_to_gguf.py`` permutes them, and transformers' GGUF loader undoes it. A LoRA update
``B @ A`` to those weights must get the same row permutation on ``B``. Without it the adapter loads and even
seems to work (the argmax often survives) but is wrong: see ``docs/train.md`` and the parity test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cadre.errors import ConfigError, ModelLoadError, NotFoundError
from cadre.runtime.gguf_merge import encode_tensor, finish_file, write_merged
from cadre.runtime.trained_prompt import read_trained_prompt

__all__ = ["EXPORT_FORMATS", "QUANTS", "export_adapter", "permute_qk_rows"]

EXPORT_FORMATS = ("gguf-adapter", "gguf-merged", "peft")
QUANTS = ("F32", "F16", "Q8_0", "Q4_0")
ExportFormat = Literal["gguf-adapter", "gguf-merged", "peft"]

# Architectures whose HF → GGUF conversion permutes q/k rows (convert_hf_to_gguf.py's LlamaModel.permute).
_PERMUTED_ARCHS = {"llama"}
# transformers model_type → llama.cpp architecture, for bases given as a transformers directory.
_ARCH_OF_MODEL_TYPE = {"llama": "llama", "mistral": "llama", "gemma3_text": "gemma3", "gemma3": "gemma3"}


def permute_qk_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the output rows of a q/k projection (or its LoRA B) from HF's layout to llama.cpp's.

    Within each head, HF keeps the two rotary halves as [x_0..x_{d/2-1}, y_0..y_{d/2-1}]; GGUF interleaves
    them as [x_0, y_0, x_1, y_1, ...]. ``weight`` is (n_head * head_dim, ...); for k use the KV head count.
    """
    rows = weight.shape[0]
    if rows % (2 * n_head):
        raise ValueError(f"cannot permute {rows} rows into {n_head} heads of even size")
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


# ------------------------------------------------------------------------------------------------ reading


def _read_adapter(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """(adapter_config.json, tensors, cadre.json base info) of a trained adapter directory."""
    from safetensors.numpy import load_file

    if not adapter_dir.is_dir():
        raise NotFoundError(f"adapter directory {str(adapter_dir)!r} does not exist")
    cfg_path, weights = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        hint = (
            " (only safetensors adapters are read, never pickled .bin files)"
            if (adapter_dir / "adapter_model.bin").exists()
            else ""
        )
        raise ModelLoadError(
            f"{adapter_dir} is not a PEFT adapter: adapter_config.json and adapter_model.safetensors are needed{hint}"
        )
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise ModelLoadError(
            f"{adapter_dir}: only LoRA adapters can be exported (got {config.get('peft_type')})"
        )
    for key in ("use_dora", "modules_to_save"):
        if config.get(key):
            raise ModelLoadError(
                f"{adapter_dir}: adapters with {key} cannot be expressed as a llama.cpp LoRA"
            )
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModelLoadError(
            f"{adapter_dir}: per-module rank/alpha patterns are not supported by the GGUF export"
        )
    meta_path = adapter_dir / "cadre.json"
    base: dict[str, Any] = (
        json.loads(meta_path.read_text(encoding="utf-8"))["base"] if meta_path.is_file() else {}
    )
    tensors = {k: v.astype(np.float32) for k, v in load_file(str(weights)).items()}
    return config, tensors, base


def _base_facts(config: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Architecture, head counts and (for GGUF bases) the file, from cadre.json or the base directory."""
    if base:
        return base
    path = Path(config.get("base_model_name_or_path") or "")
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            "the adapter has no cadre.json and its base_model_name_or_path is not a local model directory; "
            "export adapters trained by `cadre train`"
        )
    hf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    n_head = int(hf["num_attention_heads"])
    return {
        "name": str(path),
        "kind": "hf",
        "path": str(path),
        "architecture": _ARCH_OF_MODEL_TYPE.get(hf.get("model_type", ""), hf.get("model_type", "")),
        "n_head": n_head,
        "n_head_kv": int(hf.get("num_key_value_heads") or n_head),
    }


def _lora_pairs(
    config: dict[str, Any], tensors: dict[str, np.ndarray], facts: dict[str, Any], *, permute: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """GGUF base-tensor name → (A (r, n_in), B (n_out, r)), B permuted for llama q/k."""
    import gguf

    arch_name = facts["architecture"]
    arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name), None)
    if arch is None:
        raise ModelLoadError(
            f"architecture {arch_name!r} is unknown to the gguf package; cannot name its tensors"
        )
    n_blocks = 1 + max(
        (int(k.split(".layers.")[1].split(".")[0]) for k in tensors if ".layers." in k), default=0
    )
    names = gguf.get_tensor_name_map(arch, n_blocks)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if b is None:
            raise ModelLoadError(f"adapter tensor {key} has no matching lora_B")
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise ModelLoadError(
                f"no llama.cpp tensor corresponds to {module!r} for architecture {arch_name!r}"
            )
        if permute and arch_name in _PERMUTED_ARCHS:
            if target.endswith("attn_q.weight"):
                b = permute_qk_rows(b, int(facts["n_head"]))
            elif target.endswith("attn_k.weight"):
                b = permute_qk_rows(b, int(facts["n_head_kv"]))
        pairs[target] = (a, b)
    if not pairs:
        raise ModelLoadError("the adapter holds no LoRA tensors")
    return pairs


def _gguf_alpha(config: dict[str, Any]) -> float:
    """llama.cpp scales by alpha / r; PEFT by alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023)."""
    alpha, r = float(config["lora_alpha"]), int(config["r"])
    return alpha * math.sqrt(r) if config.get("use_rslora") else alpha


# ------------------------------------------------------------------------------------------------ writing


def _prompt_keys(adapter_dir: Path) -> dict[str, str]:
    """The training-time prompt from cadre.json as ``cadre.prompt.*`` keys (llama.cpp ignores them)."""
    prompt = read_trained_prompt(adapter_dir)
    return prompt.to_gguf() if prompt is not None else {}


def _write_adapter(
    out: Path,
    config: dict[str, Any],
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
    arch: str,
    quant: str,
    adapter_dir: Path,
) -> None:
    import gguf

    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", out.stem)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", _gguf_alpha(config))
    for key, value in _prompt_keys(adapter_dir).items():
        writer.add_string(key, value)
    for name, (a, b) in sorted(pairs.items()):
        for suffix, w in ((".lora_a", a), (".lora_b", b)):
            data, raw = encode_tensor(w, quant)
            writer.add_tensor(name + suffix, data, raw_dtype=raw)
    try:
        finish_file(writer, tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def export_adapter(
    adapter_dir: str | Path,
    format: str,
    quant: str | None = None,
    out: str | Path | None = None,
    *,
    _permute_qk: bool = True,
) -> Path:
    """Export the adapter trained into ``adapter_dir`` and return the written path.

    Args:
        adapter_dir: a ``cadre train`` output directory (or any PEFT LoRA directory in safetensors).
        format: ``gguf-adapter`` (llama.cpp LoRA, hot-swappable over the base GGUF), ``gguf-merged`` (one
            GGUF with the update folded in; needs a GGUF base) or ``peft`` (adapter, config and card only).
        quant: tensor type. gguf-adapter: F32 (default), F16, or Q8_0 when the rank is a multiple of 32.
            gguf-merged: Q8_0 (default) for the adapted tensors, other tensors keep the base's types; an
            explicit value converts every 2-D tensor to it (F16, Q8_0, Q4_0).
        out: output file (directory for ``peft``); default inside ``adapter_dir``.

    Raises:
        NotFoundError, ModelLoadError: the directory is not an exportable adapter or its base is missing.
        ConfigError: unknown format/quant, or a combination that cannot be written.
    """
    adapter_dir = Path(adapter_dir)
    if format == "ollama":
        raise ConfigError(
            "the ollama format writes a folder (Modelfile + GGUFs): use cadre.train.export_ollama "
            "(`cadre export DIR --format ollama`)"
        )
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if quant is not None:
        quant = quant.upper()
        if quant not in QUANTS:
            raise ConfigError(f"unknown --quant {quant!r}; use one of {', '.join(QUANTS)}")
    config, tensors, base = _read_adapter(adapter_dir)

    if format == "peft":
        if quant is not None:
            raise ConfigError("--quant applies to GGUF formats only; the PEFT adapter is exported as trained")
        target = Path(out) if out else adapter_dir / "peft"
        if target.resolve() == adapter_dir.resolve():
            raise ConfigError("--out must differ from the adapter directory")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_model.safetensors", "adapter_config.json", "README.md", "cadre.json"):
            if (adapter_dir / name).is_file():
                shutil.copyfile(adapter_dir / name, target / name)
        return target

    facts = _base_facts(config, base)
    pairs = _lora_pairs(config, tensors, facts, permute=_permute_qk)
    if format == "gguf-adapter":
        qt = quant or "F32"
        target = Path(out) if out else adapter_dir / f"adapter-{qt.lower()}.gguf"
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_adapter(target, config, pairs, facts["architecture"], qt, adapter_dir)
        return target

    if facts.get("kind") != "gguf":
        raise ConfigError(
            "gguf-merged needs a GGUF base (the adapter was trained on a transformers directory); "
            "export --format gguf-adapter or peft instead"
        )
    base_path = Path(facts["path"])
    if not base_path.is_file():
        raise NotFoundError(f"the base GGUF {str(base_path)!r} recorded in cadre.json no longer exists")
    target = Path(out) if out else adapter_dir / f"merged-{(quant or 'Q8_0').lower()}.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    scale = _gguf_alpha(config) / int(config["r"])
    write_merged(target, base_path, pairs, scale, quant, metadata=_prompt_keys(adapter_dir))
    return target
