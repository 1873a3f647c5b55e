"""Read a GGUF file's architecture metadata and its real tensor bytes (with the ``gguf`` package)."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from cadre.config.base import parse_spec
from cadre.costmodel.arch import ModelArch
from cadre.errors import ModelLoadError, NotFoundError

__all__ = ["GGUFSummary", "arch_from_gguf", "read_gguf"]


class GGUFSummary(dict[str, Any]):
    """Metadata scalars by key, plus ``tensor_bytes``, ``tensor_params`` and ``tensor_types``."""


def read_gguf(path: str | Path) -> GGUFSummary:
    """Scalar metadata (arrays skipped except short ones) and the byte/param totals of every tensor.

    Parsing a GGUF's tokenizer arrays takes seconds, so results are cached per (path, size, mtime).
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"GGUF file {str(p)!r} does not exist")
    st = p.stat()
    return GGUFSummary(_read_gguf_cached(str(p.resolve()), st.st_size, st.st_mtime_ns))


@lru_cache(maxsize=16)
def _read_gguf_cached(path: str, size: int, mtime_ns: int) -> GGUFSummary:
    p = Path(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(p))
    except Exception as err:  # the gguf package raises ValueError/struct errors on corrupt files
        raise ModelLoadError(f"{p}: not a readable GGUF file ({err})") from None
    out = GGUFSummary()
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key not in ("tokenizer.ggml.model",):
            continue  # token lists are large and irrelevant to cost
        try:
            value = field.contents()
        except Exception:
            continue
        if isinstance(value, list) and len(value) > 512:
            continue
        out[key] = value
    types: Counter[str] = Counter()
    by_type_bytes: Counter[str] = Counter()
    total_bytes = total_params = embd_bytes = 0
    has_output = False
    for t in reader.tensors:
        nb, ne = int(t.n_bytes), int(t.n_elements)
        total_bytes += nb
        total_params += ne
        types[t.tensor_type.name] += ne
        by_type_bytes[t.tensor_type.name] += nb
        if t.name == "token_embd.weight":
            embd_bytes = nb
            out["token_embd_rows"] = ne // max(int(t.shape[0]), 1)
        if t.name == "output.weight":
            has_output = True
    out["tensor_bytes"] = total_bytes
    out["tensor_params"] = total_params
    out["tensor_types"] = dict(types)
    out["tensor_type_bytes"] = dict(by_type_bytes)
    out["token_embd_bytes"] = embd_bytes
    out["has_output_weight"] = has_output
    return out


def arch_from_gguf(path: str | Path) -> ModelArch:
    """A ModelArch from GGUF metadata (``<arch>.block_count`` ...) with the file's real weight bytes."""
    meta = read_gguf(path)
    arch = meta.get("general.architecture")
    if not arch:
        raise ModelLoadError(f"{path}: GGUF has no general.architecture; cannot read the architecture")

    def get(key: str, default: Any = None, *, required: bool = True) -> Any:
        v = meta.get(f"{arch}.{key}", default)
        if v is None and required:
            raise ModelLoadError(f"{path}: GGUF metadata lacks '{arch}.{key}'")
        return v

    n_embd = int(get("embedding_length"))
    n_head = int(get("attention.head_count"))
    n_kv = get("attention.head_count_kv", n_head)
    n_kv = int(n_kv[0] if isinstance(n_kv, list) else n_kv)
    head_dim = int(get("attention.key_length", n_embd // n_head, required=False) or n_embd // n_head)
    ff = get("feed_forward_length")
    ff = int(ff[0] if isinstance(ff, list) else ff)
    vocab = meta.get(f"{arch}.vocab_size") or meta.get("token_embd_rows")
    n_layers = int(get("block_count"))
    tied = not meta["has_output_weight"]
    if not vocab:
        raise ModelLoadError(f"{path}: GGUF metadata lacks '{arch}.vocab_size'")
    data: dict[str, Any] = {
        "name": Path(path).stem,
        "model_type": str(arch),
        "num_layers": n_layers,
        "hidden_size": n_embd,
        "num_heads": n_head,
        "num_kv_heads": n_kv,
        "head_dim": head_dim,
        "intermediate_size": ff,
        "vocab_size": int(vocab),
        "tie_word_embeddings": tied,
        "max_context": get("context_length", None, required=False),
        "file_weight_bytes": float(meta["tensor_bytes"]),
        "file_precision": _dominant_type(meta["tensor_types"]),
        "source": f"gguf:{path}",
    }
    n_exp = get("expert_count", 0, required=False) or 0
    if n_exp:
        data["num_experts"] = int(n_exp)
        data["experts_per_token"] = int(get("expert_used_count"))
        eff = get("expert_feed_forward_length", None, required=False)
        if eff:
            data["moe_intermediate_size"] = int(eff)
    sw = get("attention.sliding_window", None, required=False)
    if sw:
        data["sliding_window"] = int(sw)
        if str(arch).startswith("gemma3"):
            # Gemma 3: every 6th layer is global (HF config sliding_window_pattern = 6)
            data["layer_types"] = [
                "full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n_layers)
            ]
    return parse_spec(ModelArch, data, source=str(path))


def _dominant_type(types: dict[str, int]) -> str | None:
    """The GGUF type holding the most weights, as a cadre precision name (q4_1, q8_0, fp16...)."""
    if not types:
        return None
    name = max(types.items(), key=lambda kv: kv[1])[0].lower()
    return {"f16": "fp16", "f32": "fp32", "bf16": "bf16"}.get(name, name)
