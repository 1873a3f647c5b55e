"""The roofline model of decode and prefill (Williams, Waterman & Patterson 2009, CACM 52(4)).

A step costs the larger of (bytes moved ÷ bandwidth) and (FLOPs ÷ peak), plus tensor-parallel all-reduces
and a fixed per-layer overhead (kernel launches). Efficiency factors scale bandwidth and peak; they default
to 1 (the ideal roofline) and are fitted to published measurements by :mod:`cadre.costmodel.validation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cadre.costmodel.arch import ModelArch
from cadre.costmodel.hardware import Hardware
from cadre.costmodel.kv import kv_bytes
from cadre.costmodel.moe import expected_distinct_experts
from cadre.costmodel.parallel import allreduce_seconds, devices_needed
from cadre.costmodel.quant import bytes_per_param, compute_precision, normalize_precision
from cadre.errors import CapacityError, ConfigError

__all__ = [
    "DecodeStep",
    "Efficiency",
    "Prefill",
    "critical_batch",
    "decode_step",
    "memory_needed",
    "prefill",
    "weight_bytes",
]


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of the roofline, and fixed overheads (1, 1, 0, 0 = the ideal roofline)."""

    bandwidth: float = 1.0
    compute: float = 1.0
    layer_overhead_s: float = 0.0  # per layer per forward pass (kernel launches, synchronisation)
    request_overhead_s: float = 0.0  # per prefill (scheduling, sampling, first-token bookkeeping)

    def __post_init__(self) -> None:
        if not (0 < self.bandwidth <= 1.5 and 0 < self.compute <= 1.5):
            raise ConfigError("efficiency factors must be in (0, 1.5]")


IDEAL = Efficiency()


@dataclass(frozen=True)
class DecodeStep:
    """One decode step of ``batch`` sequences at ``context`` tokens (each sequence gains one token)."""

    model: str
    hardware: str
    precision: str
    batch: int
    context: int
    tp: int
    seconds_per_token: float
    tokens_per_second: float
    tokens_per_second_per_user: float
    memory_seconds: float
    compute_seconds: float
    comm_seconds: float
    overhead_seconds: float
    flops: float
    bytes_moved: float
    weight_bytes_read: float
    kv_cache_bytes: float
    arithmetic_intensity: float
    ridge_point: float
    bound: str
    critical_batch: float | None
    distinct_experts_per_layer: float | None
    memory_needed_bytes: float
    memory_available_bytes: float


@dataclass(frozen=True)
class Prefill:
    """Processing a prompt of ``prompt_tokens`` for ``batch`` sequences (time to first token at batch 1)."""

    model: str
    hardware: str
    precision: str
    batch: int
    prompt_tokens: int
    tp: int
    seconds: float
    memory_seconds: float
    compute_seconds: float
    comm_seconds: float
    overhead_seconds: float
    flops: float
    bytes_moved: float
    arithmetic_intensity: float
    bound: str


def _bpp(model: ModelArch, precision: str | None) -> float:
    if precision is None:
        if model.file_weight_bytes:
            return model.file_weight_bytes / model.total_params()
        return bytes_per_param("bf16")
    return bytes_per_param(precision)


def _resolve_precision(model: ModelArch, precision: str | None) -> str:
    if precision is None:
        return model.file_precision or "bf16"
    return normalize_precision(precision)


def weight_bytes(model: ModelArch, precision: str | None = None) -> float:
    """Bytes to hold all weights (all experts); a GGUF's real tensor bytes when no precision is forced."""
    if precision is None and model.file_weight_bytes:
        return model.file_weight_bytes
    return model.total_params() * _bpp(model, precision)


def memory_needed(
    model: ModelArch, *, precision: str | None, batch: int, context: int, kv_precision: str = "fp16"
) -> float:
    """Weights + KV cache of ``batch`` sequences at ``context`` tokens (activations excluded)."""
    return weight_bytes(model, precision) + kv_bytes(model, context, batch=batch, precision=kv_precision)


def _check_sizes(**sizes: int) -> None:
    for k, v in sizes.items():
        if v < 1:
            raise ConfigError(f"{k} must be >= 1, got {v}")


def _attention_flops_per_token(model: ModelArch, context: int) -> float:
    """2·h·S·(d_qk + d_v) per layer: QKᵀ and attention·V over the attended tokens (Kaplan et al. 2020 Tab. 1)."""
    d_qk = (model.qk_nope_head_dim or 0) + (model.qk_rope_head_dim or 0) if model.is_mla else model.head_dim
    d_v = (model.v_head_dim or model.head_dim) if model.is_mla else model.head_dim
    attended = sum(context if w is None else min(context, w) for w in model.layer_windows())
    return 2.0 * model.num_heads * (d_qk + d_v) * attended


def _fit_check(
    model: ModelArch,
    hw: Hardware,
    precision: str | None,
    batch: int,
    context: int,
    tp: int,
    kv_precision: str,
    enforce: bool,
) -> tuple[float, float]:
    need = memory_needed(model, precision=precision, batch=batch, context=context, kv_precision=kv_precision)
    have = tp * hw.memory_bytes
    if enforce and need > have:
        w = weight_bytes(model, precision)
        if w > 0.9 * have:
            n = devices_needed(w, hw.memory_bytes)
            raise CapacityError(
                f"tp: {model.name} weights need {w / 1e9:.1f} GB but {tp} x {hw.name} hold "
                f"{have / 1e9:.1f} GB; use --tp {n} or more (or a smaller --precision)"
            )
        raise CapacityError(
            f"batch: {batch} sequences at context {context} need {need / 1e9:.1f} GB (weights "
            f"{w / 1e9:.1f} + KV {(need - w) / 1e9:.1f}) but {tp} x {hw.name} hold {have / 1e9:.1f} GB; "
            f"lower --batch or --context, or raise --tp"
        )
    return need, have


def _distinct_experts(model: ModelArch, tokens: float) -> float | None:
    """Expected distinct experts read per MoE layer for ``tokens`` tokens; None for a dense model."""
    return (
        expected_distinct_experts(model.num_experts, model.experts_per_token, tokens)
        if model.is_moe
        else None
    )


def _roofline_seconds(
    hardware: Hardware,
    prec: str,
    bytes_moved: float,
    flops: float,
    *,
    tp: int,
    efficiency: Efficiency,
    measured: bool,
) -> tuple[float, float]:
    """(memory seconds, compute seconds): bytes over ``tp`` × bandwidth, FLOPs over ``tp`` × peak compute."""
    bw = tp * hardware.bandwidth(measured=measured) * efficiency.bandwidth
    peak = tp * hardware.flops(compute_precision(prec), measured=measured) * efficiency.compute
    return bytes_moved / bw, flops / peak


def _tp_comm_seconds(model: ModelArch, hardware: Hardware, tp: int, tokens: int) -> float:
    """Two all-reduces of the activations (tokens × hidden, 16-bit) per layer (Megatron-LM, Shoeybi et al. 2019)."""
    msg = tokens * model.hidden_size * 2.0
    return (
        2
        * model.num_layers
        * allreduce_seconds(msg, tp, hardware.interconnect_bytes_per_s or 1.0, hardware.allreduce_latency_s)
        if tp > 1
        else 0.0
    )


def decode_step(
    model: ModelArch,
    hardware: Hardware,
    *,
    precision: str | None = None,
    batch: int = 1,
    context: int = 1024,
    tp: int = 1,
    kv_precision: str = "fp16",
    efficiency: Efficiency = IDEAL,
    measured: bool = False,
    enforce_memory: bool = True,
) -> DecodeStep:
    """Time of one decode step: max(bytes/BW, FLOPs/peak) + all-reduces + per-layer overhead.

    bytes = weights read (MoE: expected distinct experts at this batch) + batch × KV cache at ``context``;
    FLOPs = batch × (2 × matmul parameters + attention over the context) (Kaplan et al. 2020, Table 1).
    """
    _check_sizes(batch=batch, tp=tp)
    if context < 0:
        raise ConfigError(f"context must be >= 0, got {context}")
    prec = _resolve_precision(model, precision)
    need, have = _fit_check(model, hardware, precision, batch, context, tp, kv_precision, enforce_memory)
    distinct = _distinct_experts(model, batch)
    w_read = model.weight_params_read(distinct) * _bpp(model, precision)
    kv = kv_bytes(model, context, batch=batch, precision=kv_precision)
    bytes_moved = w_read + kv
    flops = batch * (2.0 * model.matmul_params_per_token() + _attention_flops_per_token(model, context))
    t_mem, t_comp = _roofline_seconds(
        hardware, prec, bytes_moved, flops, tp=tp, efficiency=efficiency, measured=measured
    )
    t_comm = _tp_comm_seconds(model, hardware, tp, batch)
    t_over = model.num_layers * efficiency.layer_overhead_s
    step = max(t_mem, t_comp) + t_comm + t_over
    ridge = hardware.ridge_point(compute_precision(prec), measured=measured)
    return DecodeStep(
        model=model.name,
        hardware=hardware.name,
        precision=prec,
        batch=batch,
        context=context,
        tp=tp,
        seconds_per_token=step,
        tokens_per_second=batch / step,
        tokens_per_second_per_user=1.0 / step,
        memory_seconds=t_mem,
        compute_seconds=t_comp,
        comm_seconds=t_comm,
        overhead_seconds=t_over,
        flops=flops,
        bytes_moved=bytes_moved,
        weight_bytes_read=w_read,
        kv_cache_bytes=kv,
        arithmetic_intensity=flops / bytes_moved,
        ridge_point=ridge,
        bound="compute" if t_comp > t_mem else "memory",
        critical_batch=critical_batch(
            model,
            hardware,
            precision=precision,
            context=context,
            kv_precision=kv_precision,
            measured=measured,
        ),
        distinct_experts_per_layer=distinct,
        memory_needed_bytes=need,
        memory_available_bytes=have,
    )


def critical_batch(
    model: ModelArch,
    hardware: Hardware,
    *,
    precision: str | None = None,
    context: int = 0,
    kv_precision: str = "fp16",
    measured: bool = False,
    max_batch: int = 1 << 20,
) -> float | None:
    """Smallest batch at which a decode step becomes compute-bound, or None if it never does.

    Intensity I(B) = B·F / (W(B) + B·KV(S)) saturates at F/KV(S) (derived in shared/notes/cost-model.md §4):
    beyond a few thousand tokens of context, large batches stay memory-bound.
    """
    prec = _resolve_precision(model, precision)
    ridge = hardware.ridge_point(compute_precision(prec), measured=measured)
    f = 2.0 * model.matmul_params_per_token() + _attention_flops_per_token(model, context)
    kv1 = kv_bytes(model, context, batch=1, precision=kv_precision)
    bpp = _bpp(model, precision)

    def intensity(b: float) -> float:
        return b * f / (model.weight_params_read(_distinct_experts(model, b)) * bpp + b * kv1)

    if intensity(max_batch) < ridge:
        return None
    lo, hi = 1.0, float(max_batch)
    if intensity(lo) >= ridge:
        return 1.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if intensity(mid) < ridge else (lo, mid)
    return hi


def prefill(
    model: ModelArch,
    hardware: Hardware,
    *,
    prompt_tokens: int,
    precision: str | None = None,
    batch: int = 1,
    tp: int = 1,
    kv_precision: str = "fp16",
    efficiency: Efficiency = IDEAL,
    measured: bool = False,
    enforce_memory: bool = True,
) -> Prefill:
    """Prefill time (time to first token at batch 1): max(bytes/BW, FLOPs/peak) + all-reduces + overheads.

    FLOPs = B·(2·P·S + causal attention Σ_t 2·h·(d_qk+d_v)·min(t, window)); bytes = weights (every expert
    touched by B·S tokens) + the KV cache written.
    """
    _check_sizes(prompt_tokens=prompt_tokens, batch=batch, tp=tp)
    prec = _resolve_precision(model, precision)
    _fit_check(model, hardware, precision, batch, prompt_tokens, tp, kv_precision, enforce_memory)
    tokens = batch * prompt_tokens
    w_read = model.weight_params_read(_distinct_experts(model, tokens)) * _bpp(model, precision)
    kv = kv_bytes(model, prompt_tokens, batch=batch, precision=kv_precision)
    # causal attention: token t attends to min(t, w) tokens → sum ≈ S²/2 for full layers
    attn = 0.0
    d_qk = (model.qk_nope_head_dim or 0) + (model.qk_rope_head_dim or 0) if model.is_mla else model.head_dim
    d_v = (model.v_head_dim or model.head_dim) if model.is_mla else model.head_dim
    s = prompt_tokens
    for w in model.layer_windows():
        attended = s * s / 2.0 if w is None or w >= s else w * (s - w) + w * w / 2.0
        attn += 2.0 * model.num_heads * (d_qk + d_v) * attended
    flops = batch * (2.0 * model.matmul_params_per_token() * s + attn)
    bytes_moved = w_read + kv
    t_mem, t_comp = _roofline_seconds(
        hardware, prec, bytes_moved, flops, tp=tp, efficiency=efficiency, measured=measured
    )
    t_comm = _tp_comm_seconds(model, hardware, tp, tokens)
    t_over = model.num_layers * efficiency.layer_overhead_s + efficiency.request_overhead_s
    return Prefill(
        model=model.name,
        hardware=hardware.name,
        precision=prec,
        batch=batch,
        prompt_tokens=s,
        tp=tp,
        seconds=max(t_mem, t_comp) + t_comm + t_over,
        memory_seconds=t_mem,
        compute_seconds=t_comp,
        comm_seconds=t_comm,
        overhead_seconds=t_over,
        flops=flops,
        bytes_moved=bytes_moved,
        arithmetic_intensity=flops / bytes_moved,
        bound="compute" if t_comp > t_mem else "memory",
    )
