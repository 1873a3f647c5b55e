"""KV-cache size: MHA, GQA, MQA, MLA and sliding-window layers."""

from __future__ import annotations

from cadre.costmodel.arch import ModelArch
from cadre.costmodel.quant import bytes_per_param
from cadre.errors import ConfigError

__all__ = ["kv_bytes", "kv_bytes_per_token", "paper_kv_bytes_per_token"]


def _kv_elements_per_token_per_layer(model: ModelArch) -> float:
    if model.is_mla:
        # MLA caches the compressed latent plus the decoupled RoPE key (DeepSeek-V2 §2.1.2, arXiv 2405.04434)
        return float((model.kv_lora_rank or 0) + (model.qk_rope_head_dim or 0))
    # K and V, one vector of head_dim per KV head (GQA: Ainslie et al. 2023, arXiv 2305.13245)
    return float(2 * model.num_kv_heads * model.head_dim)


def kv_bytes_per_token(model: ModelArch, precision: str = "fp16") -> float:
    """Cache bytes added per token when every layer keeps the token (no window reached)."""
    return model.num_layers * _kv_elements_per_token_per_layer(model) * bytes_per_param(precision)


def kv_bytes(model: ModelArch, context: int, *, batch: int = 1, precision: str = "fp16") -> float:
    """Cache bytes for ``batch`` sequences of ``context`` tokens; sliding-window layers keep only the window."""
    if context < 0:
        raise ConfigError(f"context must be >= 0, got {context}")
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    per = _kv_elements_per_token_per_layer(model) * bytes_per_param(precision)
    tokens = sum(context if w is None else min(context, w) for w in model.layer_windows())
    return batch * tokens * per


def paper_kv_bytes_per_token(num_layers: int, hidden_size: int) -> float:
    """The paper's formula M_kv = 4·L·d per token (K and V, FP16, full multi-head attention)."""
    return 4.0 * num_layers * hidden_size
