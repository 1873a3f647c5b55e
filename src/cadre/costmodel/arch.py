"""Model architectures: HF ``config.json`` fields → parameter counts and per-token bytes/FLOPs.

Catalog entries live in ``data/models/<name>.json`` in HF config form; a user passes any ``config.json``
or a GGUF file (its header read with :func:`cadre.formats.read_gguf_header`).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from cadre.config.base import StrictModel, parse_spec
from cadre.errors import ConfigError, ModelLoadError, NotFoundError, did_you_mean
from cadre.formats import GGUFHeader, read_gguf_header

__all__ = ["ModelArch", "arch_from_gguf", "arch_from_hf_config", "load_model", "model_names"]

LayerKind = Literal["full_attention", "sliding_attention"]


class ModelArch(StrictModel):
    """A decoder-only transformer, in the terms the cost model needs (HF config names in comments)."""

    name: str
    model_type: str = "llama"
    num_layers: int = Field(gt=0)  # num_hidden_layers
    hidden_size: int = Field(gt=0)  # hidden_size
    num_heads: int = Field(gt=0)  # num_attention_heads
    num_kv_heads: int = Field(gt=0)  # num_key_value_heads
    head_dim: int = Field(gt=0)  # head_dim (default hidden_size // num_attention_heads)
    intermediate_size: int = Field(gt=0)  # intermediate_size (dense FFN)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    gated_mlp: bool = True  # SwiGLU/GeGLU: 3 matrices; GPT-style GELU MLP: 2
    attention_bias: bool = False
    # Mixture of experts (num_local_experts / n_routed_experts, num_experts_per_tok, n_shared_experts)
    num_experts: int = Field(default=0, ge=0)
    experts_per_token: int = Field(default=0, ge=0)
    num_shared_experts: int = Field(default=0, ge=0)
    moe_intermediate_size: int | None = Field(default=None, gt=0)
    first_dense_layers: int = Field(default=0, ge=0)  # first_k_dense_replace
    # Multi-head latent attention (DeepSeek-V2/V3)
    q_lora_rank: int | None = Field(default=None, gt=0)
    kv_lora_rank: int | None = Field(default=None, gt=0)
    qk_nope_head_dim: int | None = Field(default=None, gt=0)
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    v_head_dim: int | None = Field(default=None, gt=0)
    # Sliding-window attention: a window for "sliding_attention" layers (all layers if layer_types absent)
    sliding_window: int | None = Field(default=None, gt=0)
    layer_types: list[LayerKind] | None = None
    max_context: int | None = Field(default=None, gt=0)
    # Overrides for estimated models whose full config is unknown (the paper's GPT-4 estimate)
    total_params_override: float | None = Field(default=None, gt=0)
    active_params_override: float | None = Field(default=None, gt=0)
    # Real stored bytes (from a GGUF file) and its dominant type
    file_weight_bytes: float | None = Field(default=None, gt=0)
    file_precision: str | None = None
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelArch:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_key_value_heads ({self.num_kv_heads}) must divide num_attention_heads")
        if self.experts_per_token > self.num_experts:
            raise ValueError("num_experts_per_tok is larger than the number of experts")
        if self.layer_types is not None and len(self.layer_types) != self.num_layers:
            raise ValueError(f"layer_types has {len(self.layer_types)} entries for {self.num_layers} layers")
        return self

    # --- structure -------------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0 and self.experts_per_token > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def attention_kind(self) -> str:
        """MHA, GQA, MQA or MLA."""
        if self.is_mla:
            return "MLA"
        if self.num_kv_heads == self.num_heads:
            return "MHA"
        return "MQA" if self.num_kv_heads == 1 else "GQA"

    @property
    def moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    def layer_windows(self) -> list[int | None]:
        """Per layer: the attention window in tokens, or None for full attention."""
        if self.sliding_window is None:
            return [None] * self.num_layers
        if self.layer_types is None:
            return [self.sliding_window] * self.num_layers
        return [self.sliding_window if t == "sliding_attention" else None for t in self.layer_types]

    # --- parameter counts (each term: rows x columns of a weight matrix) ---------------------------
    def attention_params_per_layer(self) -> float:
        d, h, hd, kv = self.hidden_size, self.num_heads, self.head_dim, self.num_kv_heads
        if self.is_mla:
            # DeepSeek-V2 §2.1 (arXiv 2405.04434): low-rank Q and joint KV compression + decoupled RoPE key
            nope, rope = self.qk_nope_head_dim or 128, self.qk_rope_head_dim or 64
            v, kvr = self.v_head_dim or 128, self.kv_lora_rank or 512
            q = (
                d * self.q_lora_rank + self.q_lora_rank * h * (nope + rope)
                if self.q_lora_rank
                else d * h * (nope + rope)
            )
            kv_p = d * (kvr + rope) + kvr * h * (nope + v)
            return float(q + kv_p + h * v * d)
        bias = (h * hd + 2 * kv * hd) if self.attention_bias else 0
        return float(d * h * hd + 2 * d * kv * hd + h * hd * d + bias)

    def _mlp_params(self, inter: int) -> float:
        return float((3 if self.gated_mlp else 2) * self.hidden_size * inter)

    def expert_params(self) -> float:
        """Parameters of one routed expert."""
        return self._mlp_params(self.moe_intermediate_size or self.intermediate_size)

    def dense_mlp_params(self) -> float:
        return self._mlp_params(self.intermediate_size)

    def embedding_params(self) -> float:
        return float(self.vocab_size * self.hidden_size)

    def lm_head_params(self) -> float:
        return 0.0 if self.tie_word_embeddings else self.embedding_params()

    def _non_expert_params(self) -> float:
        """Everything but the routed experts: attention, dense MLPs, shared experts, routers, norms, lm_head."""
        L, d = self.num_layers, self.hidden_size
        total = L * (self.attention_params_per_layer() + 2 * d)
        dense_layers = L - self.moe_layers
        total += dense_layers * self.dense_mlp_params()
        total += self.moe_layers * (self.num_shared_experts * self.expert_params() + d * self.num_experts)
        return total + self.embedding_params() + self.lm_head_params() + d

    def total_params(self) -> float:
        """All parameters (embedding counted once when tied)."""
        if self.total_params_override:
            return self.total_params_override
        return self._non_expert_params() + self.moe_layers * self.num_experts * self.expert_params()

    def active_params(self) -> float:
        """Parameters used per token (routed experts: top-k only)."""
        if self.active_params_override:
            return self.active_params_override
        return self._non_expert_params() + self.moe_layers * self.experts_per_token * self.expert_params()

    def matmul_params_per_token(self) -> float:
        """Active parameters that multiply each token (the input embedding is a lookup, not a matmul)."""
        emb = 0.0 if self.tie_word_embeddings else self.embedding_params()
        if self.active_params_override:
            return self.active_params_override
        return self.active_params() - emb

    def weight_params_read(self, distinct_experts_per_layer: float | None = None) -> float:
        """Parameters streamed from memory per decode step, given the expected distinct experts per layer."""
        if self.active_params_override:
            # estimated model: active params read per token; extra experts scale with the total/active gap
            if distinct_experts_per_layer is None or not self.is_moe:
                return self.active_params_override
            extra = (distinct_experts_per_layer - self.experts_per_token) / max(
                self.num_experts - self.experts_per_token, 1
            )
            gap = (self.total_params_override or self.active_params_override) - self.active_params_override
            return self.active_params_override + max(extra, 0.0) * gap
        emb = 0.0 if self.tie_word_embeddings else self.embedding_params()
        base = self._non_expert_params() - emb
        k = self.experts_per_token if distinct_experts_per_layer is None else distinct_experts_per_layer
        return base + self.moe_layers * k * self.expert_params()


# HF keys that do not change cost (tokenizer ids, rope, init, dropout, dtype, ...): accepted and ignored.
_IGNORED_HF_KEYS = {
    "architectures",
    "auto_map",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "sep_token_id",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "rope_local_base_freq",
    "rms_norm_eps",
    "layer_norm_eps",
    "layer_norm_epsilon",
    "norm_epsilon",
    "initializer_range",
    "hidden_act",
    "hidden_activation",
    "activation_function",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "use_cache",
    "attention_dropout",
    "hidden_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "dropout",
    "mlp_bias",
    "pretraining_tp",
    "use_sliding_window",
    "max_window_layers",
    "partial_rotary_factor",
    "original_max_position_embeddings",
    "output_router_logits",
    "router_aux_loss_coef",
    "router_jitter_noise",
    "aux_loss_alpha",
    "seq_aux",
    "norm_topk_prob",
    "scoring_func",
    "topk_method",
    "n_group",
    "topk_group",
    "routed_scaling_factor",
    "ep_size",
    "moe_layer_freq",
    "num_nextn_predict_layers",
    "quantization_config",
    "query_pre_attn_scalar",
    "final_logit_softcapping",
    "attn_logit_softcapping",
    "_sliding_window_pattern",
    "sliding_window_pattern",
    "use_bidirectional_attention",
    "attention_chunk_size",
    "bias",
    "model_name",
    "name_or_path",
    "_name_or_path",
    "is_decoder",
    "tokenizer_class",
    "unsloth_version",
    "use_qk_norm",
    "qk_layernorm",
    "tie_encoder_decoder",
    "cache_implementation",
    "n_positions",
    "n_ctx",
    "scale_attn_weights",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_proj_to_labels",
    "summary_first_dropout",
    "reorder_and_upcast_attn",
    "scale_attn_by_inverse_layer_idx",
    "rotary_emb_base",
    "rotary_pct",
    "use_parallel_residual",
    "classifier_dropout",
    "gradient_checkpointing",
    "vision_config",
    "image_token_index",
    "boi_token_index",
    "eoi_token_index",
    "mm_tokens_per_image",
}
_HF_MAP = {
    "num_hidden_layers": "num_layers",
    "n_layer": "num_layers",
    "num_layers": "num_layers",
    "hidden_size": "hidden_size",
    "n_embd": "hidden_size",
    "d_model": "hidden_size",
    "num_attention_heads": "num_heads",
    "n_head": "num_heads",
    "num_key_value_heads": "num_kv_heads",
    "head_dim": "head_dim",
    "intermediate_size": "intermediate_size",
    "n_inner": "intermediate_size",
    "ffn_dim": "intermediate_size",
    "vocab_size": "vocab_size",
    "tie_word_embeddings": "tie_word_embeddings",
    "attention_bias": "attention_bias",
    "num_local_experts": "num_experts",
    "n_routed_experts": "num_experts",
    "num_experts": "num_experts",
    "num_experts_per_tok": "experts_per_token",
    "n_shared_experts": "num_shared_experts",
    "moe_intermediate_size": "moe_intermediate_size",
    "first_k_dense_replace": "first_dense_layers",
    "q_lora_rank": "q_lora_rank",
    "kv_lora_rank": "kv_lora_rank",
    "qk_nope_head_dim": "qk_nope_head_dim",
    "qk_rope_head_dim": "qk_rope_head_dim",
    "v_head_dim": "v_head_dim",
    "sliding_window": "sliding_window",
    "layer_types": "layer_types",
    "max_position_embeddings": "max_context",
    "model_type": "model_type",
    "cadre_total_params": "total_params_override",
    "cadre_active_params": "active_params_override",
    "_cadre_source": "source",
    "cadre_gated_mlp": "gated_mlp",
}
_NON_GATED_TYPES = {"gpt2", "gpt3", "gpt4_est", "gptj", "gpt_neox", "opt", "bloom", "falcon", "phi"}


def arch_from_hf_config(cfg: dict[str, Any], *, name: str, source: str = "") -> ModelArch:
    """Build a ModelArch from an HF ``config.json`` dict; unknown architecture keys are one-line errors."""
    if "text_config" in cfg and isinstance(cfg["text_config"], dict):  # multimodal wrappers (Gemma 3)
        cfg = {
            **cfg["text_config"],
            "model_type": cfg["text_config"].get("model_type", cfg.get("model_type")),
        }
    out: dict[str, Any] = {"name": name}
    for key, value in cfg.items():
        if key in _HF_MAP:
            if value is not None:
                out[_HF_MAP[key]] = value
        elif key not in _IGNORED_HF_KEYS:
            raise ConfigError(
                f"{source or name}: unknown config key {key!r} (cadre cannot tell whether it changes the "
                f"architecture; remove it or check its spelling)"
            )
    for req in ("num_layers", "hidden_size", "num_heads", "intermediate_size", "vocab_size"):
        if req not in out:
            hf = next(k for k, v in _HF_MAP.items() if v == req)
            raise ConfigError(f"{source or name}: missing required config key {hf!r}")
    out.setdefault("num_kv_heads", out["num_heads"])
    if "head_dim" not in out:
        out["head_dim"] = out["hidden_size"] // out["num_heads"]
    mt = str(out.get("model_type", "llama"))
    if "gated_mlp" not in out:
        out["gated_mlp"] = mt not in _NON_GATED_TYPES
    if out.get("sliding_window") is not None and "layer_types" not in out and mt.startswith("qwen"):
        out.pop("sliding_window")  # Qwen configs carry a window that is off unless use_sliding_window
    if out.get("num_experts") and not out.get("experts_per_token"):
        raise ConfigError(f"{source or name}: MoE config needs 'num_experts_per_tok'")
    if source and not out.get("source"):
        out["source"] = source
    return parse_spec(ModelArch, out, source=source or name)


def _gguf_header(path: Path) -> GGUFHeader:
    if not path.is_file():
        raise NotFoundError(f"GGUF file {str(path)!r} does not exist")
    st = path.stat()
    return _gguf_header_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _gguf_header_cached(path: str, size: int, mtime_ns: int) -> GGUFHeader:
    return read_gguf_header(path, what="GGUF")


def arch_from_gguf(path: str | Path) -> ModelArch:
    """A ModelArch from GGUF metadata (``<arch>.block_count`` ...) with the file's real weight bytes."""
    header = _gguf_header(Path(path))
    meta, arch = header.metadata, header.metadata.get("general.architecture")
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
    embd = header.tensors.get("token_embd.weight")
    vocab = meta.get(f"{arch}.vocab_size") or (math.prod(embd) // max(int(embd[0]), 1) if embd else None)
    n_layers = int(get("block_count"))
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
        "tie_word_embeddings": "output.weight" not in header.tensors,
        "max_context": get("context_length", None, required=False),
        "file_weight_bytes": float(sum(header.tensor_bytes.values())),
        "file_precision": _precision_name(header) if header.tensors else None,
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


def _precision_name(header: GGUFHeader) -> str:
    """The GGUF type holding the most weights, as a cadre precision name (q4_1, q8_0, fp16...)."""
    name = header.dominant_tensor_type.lower()
    return {"f16": "fp16", "f32": "fp32", "bf16": "bf16"}.get(name, name)


@cache
def _catalog_files() -> dict[str, str]:
    folder = resources.files("cadre.costmodel").joinpath("data/models")
    return {
        p.name.removesuffix(".json"): p.read_text(encoding="utf-8")
        for p in folder.iterdir()
        if p.name.endswith(".json")
    }


# Other names for catalog models that cadre cannot run (runtime models name their id in the runtime catalog,
# applied by callers through cadre.runtime.costmodel_id).
_ALIASES = {
    "llama3-8b": "llama-3-8b",
    "llama-3.1-8b": "llama-3-8b",
    "llama-3.1-70b": "llama-3-70b",
    "llama-3.3-70b": "llama-3-70b",
    "llama3-70b": "llama-3-70b",
    "llama-7b": "llama-2-7b",
    "llama-70b": "llama-2-70b",
    "mixtral": "mixtral-8x7b",
    "phi3-mini": "phi-3-mini",
    "gpt-4": "gpt4-est",
    "gpt4": "gpt4-est",
    "gpt-3": "gpt3-175b",
    "deepseek-v3-671b": "deepseek-v3",
}


def model_names() -> list[str]:
    """Every model in the catalog."""
    return sorted(_catalog_files())


def load_model(name_or_path: str | Path) -> ModelArch:
    """A catalog name, an HF ``config.json`` path (or a folder holding one), or a ``.gguf`` file path."""
    text = str(name_or_path)
    p = Path(text)
    if text.lower().endswith(".gguf"):
        return arch_from_gguf(p)
    if p.is_dir() and (p / "config.json").is_file():
        p = p / "config.json"
    if p.suffix == ".json" or p.is_file():
        if not p.is_file():
            raise NotFoundError(f"model config {text!r} does not exist")
        try:
            cfg = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{p}: not valid JSON: {err}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{p}: a config.json must be a JSON object")
        stem = p.parent.name if p.name == "config.json" else p.stem
        return arch_from_hf_config(cfg, name=re.sub(r"[^A-Za-z0-9._-]", "-", stem) or "model", source=str(p))
    key = _ALIASES.get(text.lower(), text.lower())
    files = _catalog_files()
    if key not in files:
        raise did_you_mean(text, [*files, *_ALIASES], kind="model")
    return arch_from_hf_config(json.loads(files[key]), name=key, source=f"catalog:{key}")
