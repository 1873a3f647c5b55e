"""Specialist vs generalist side by side: latency, throughput, dollars, GPUs and energy per batch/context."""

from __future__ import annotations

from dataclasses import dataclass

from cadre.costmodel.arch import ModelArch
from cadre.costmodel.hardware import Hardware
from cadre.costmodel.parallel import devices_needed
from cadre.costmodel.roofline import Efficiency, decode_step, memory_needed
from cadre.costmodel.tco import cost_per_million_tokens, power_kw
from cadre.errors import ConfigError

__all__ = ["CompareRow", "Side", "compare", "devices_for"]


def devices_for(
    model: ModelArch,
    hw: Hardware,
    *,
    precision: str | None,
    batch: int,
    context: int,
    kv_precision: str = "fp16",
) -> int:
    """Devices needed to hold weights + KV cache (90% usable), rounded up to a power of two (TP sizes)."""
    n = devices_needed(
        memory_needed(model, precision=precision, batch=batch, context=context, kv_precision=kv_precision),
        hw.memory_bytes,
    )
    p = 1
    while p < n:
        p *= 2
    return p


@dataclass(frozen=True)
class Side:
    model: str
    devices: int
    seconds_per_token: float
    tokens_per_second: float
    usd_per_million_tokens: float
    kwh_per_million_tokens: float
    bound: str


@dataclass(frozen=True)
class CompareRow:
    batch: int
    context: int
    generalist: Side
    specialist: Side
    latency_ratio: float  # generalist time per token ÷ specialist
    cost_ratio: float  # generalist $ per 1M tokens ÷ specialist


def _side(
    model: ModelArch,
    hw: Hardware,
    precision: str | None,
    batch: int,
    context: int,
    tp: int | None,
    pue: float,
    efficiency: Efficiency,
) -> Side:
    n = tp or devices_for(model, hw, precision=precision, batch=batch, context=context)
    d = decode_step(model, hw, precision=precision, batch=batch, context=context, tp=n, efficiency=efficiency)
    kw = power_kw(n, hw.tdp_watts, pue=pue)
    return Side(
        model=model.name,
        devices=n,
        seconds_per_token=d.seconds_per_token,
        tokens_per_second=d.tokens_per_second,
        usd_per_million_tokens=cost_per_million_tokens(d.tokens_per_second, hw, n_devices=n),
        kwh_per_million_tokens=kw / 3600.0 / d.tokens_per_second * 1e6,
        bound=d.bound,
    )


def compare(
    generalist: ModelArch,
    specialist: ModelArch,
    hardware: Hardware,
    *,
    precision: str | None = "fp8",
    batches: tuple[int, ...] = (1, 8, 64),
    contexts: tuple[int, ...] = (1024,),
    generalist_tp: int | None = None,
    specialist_tp: int | None = None,
    pue: float = 1.0,
    efficiency: Efficiency | None = None,
) -> list[CompareRow]:
    """For each (batch, context): both models' decode cost; devices default to what memory needs."""
    if not batches or not contexts:
        raise ConfigError("batches and contexts must not be empty")
    eff = efficiency or Efficiency()
    rows = []
    for s in contexts:
        for b in batches:
            g = _side(generalist, hardware, precision, b, s, generalist_tp, pue, eff)
            sp = _side(specialist, hardware, precision, b, s, specialist_tp, pue, eff)
            rows.append(
                CompareRow(
                    b,
                    s,
                    g,
                    sp,
                    g.seconds_per_token / sp.seconds_per_token,
                    g.usd_per_million_tokens / sp.usd_per_million_tokens,
                )
            )
    return rows
