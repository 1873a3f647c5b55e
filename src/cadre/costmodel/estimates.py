"""One estimate per cost question (decode, prefill, KV cache, memory fit, training, speculation, catalogs).

Each function takes catalog names (or paths) as ``cadre cost`` does, composes the formulas of the other
modules and returns a typed result; ``to_json()`` (or the dataclass itself) is the machine-readable form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadre.costmodel.arch import ModelArch, load_model, model_names
from cadre.costmodel.compare import CompareRow, compare
from cadre.costmodel.engines import IDEAL_ENGINES, EngineChoice, resolve_engine
from cadre.costmodel.hardware import Hardware, hardware_names, load_hardware
from cadre.costmodel.kv import kv_bytes, kv_bytes_per_token, paper_kv_bytes_per_token
from cadre.costmodel.parallel import USABLE_MEMORY_FRACTION, devices_needed
from cadre.costmodel.plot import (
    RooflinePoint,
    RooflineWorkload,
    plot_compare,
    plot_roofline,
    roofline_workload,
)
from cadre.costmodel.quant import compute_precision
from cadre.costmodel.roofline import (
    DecodeStep,
    Efficiency,
    Prefill,
    decode_step,
    memory_needed,
    prefill,
    weight_bytes,
)
from cadre.costmodel.speculative import paper_speedup, speculative_speedup
from cadre.costmodel.tco import cost_per_million_tokens
from cadre.costmodel.training import chinchilla_optimal, training_flops, training_gpu_seconds
from cadre.errors import ConfigError

__all__ = [
    "DecodeCost",
    "KvCacheSize",
    "MemoryFit",
    "ModelCatalogEntry",
    "ModelComparison",
    "PrefillCost",
    "RooflineChart",
    "SpeculativeEstimate",
    "TrainingCost",
    "compare_models",
    "decode_cost",
    "efficiency_for_engine",
    "hardware_catalog",
    "kv_cache_size",
    "memory_fit",
    "model_catalog",
    "prefill_cost",
    "roofline_chart",
    "speculative_estimate",
    "training_cost",
]


def efficiency_for_engine(engine: str, hardware: Hardware | None = None) -> Efficiency:
    """``roofline``/``ideal``: no losses; ``auto``: the factors of the engine ``hardware``'s family implies;
    otherwise the factors fitted for the named engine on published data."""
    if engine in IDEAL_ENGINES:
        return Efficiency()
    if engine == "auto":
        if hardware is None:
            raise ConfigError("engine 'auto' needs the hardware to choose from; name an engine instead")
        return resolve_engine(engine, hardware, with_error=False).efficiency
    from cadre.costmodel.validation import engine_efficiency

    return engine_efficiency(engine)


@dataclass(frozen=True)
class DecodeCost:
    """One decode step, the engine it assumes (and its validation error) and what a million tokens cost."""

    step: DecodeStep
    engine: EngineChoice
    usd_per_million_tokens: float
    price_per_hour: float

    def to_json(self) -> dict[str, Any]:
        e = self.engine
        return {
            **self.step.__dict__,
            "engine": e.engine,
            "engine_requested": e.requested,
            "ideal_bound": e.ideal,
            "engine_reason": e.reason,
            "engine_loso_median_abs_pct_error": e.loso_median_abs_pct_error,
            "engine_validation_points": e.validation_points,
            "usd_per_million_tokens": self.usd_per_million_tokens,
            "price_per_hour": self.price_per_hour,
        }


def decode_cost(
    model: str,
    hardware: str,
    *,
    precision: str | None = None,
    batch: int = 1,
    context: int = 1024,
    tp: int = 1,
    kv_precision: str = "fp16",
    engine: str = "roofline",
    measured: bool = False,
    price_per_hour: float | None = None,
) -> DecodeCost:
    """Time of one decode step at ``batch`` x ``context`` and its dollars per million tokens on ``tp`` devices."""
    hw = load_hardware(hardware, price_per_hour=price_per_hour)
    arch = load_model(model)
    choice = resolve_engine(engine, hw)
    step = decode_step(
        arch,
        hw,
        precision=precision,
        batch=batch,
        context=context,
        tp=tp,
        kv_precision=kv_precision,
        efficiency=choice.efficiency,
        measured=measured,
    )
    usd = cost_per_million_tokens(step.tokens_per_second, hw, n_devices=tp)
    return DecodeCost(step, choice, usd, hw.price_per_hour)


@dataclass(frozen=True)
class PrefillCost:
    """Prefill of a prompt batch under an engine's efficiency factors."""

    prefill: Prefill
    engine: str

    @property
    def prompt_tokens_per_second(self) -> float:
        p = self.prefill
        return p.batch * p.prompt_tokens / p.seconds

    def to_json(self) -> dict[str, Any]:
        return {**self.prefill.__dict__, "engine": self.engine}


def prefill_cost(
    model: str,
    hardware: str,
    *,
    prompt_tokens: int = 1024,
    precision: str | None = None,
    batch: int = 1,
    tp: int = 1,
    engine: str = "roofline",
) -> PrefillCost:
    """Time to process ``batch`` prompts of ``prompt_tokens`` (time to first token at batch 1)."""
    hw = load_hardware(hardware)
    p = prefill(
        load_model(model),
        hw,
        prompt_tokens=prompt_tokens,
        precision=precision,
        batch=batch,
        tp=tp,
        efficiency=efficiency_for_engine(engine, hw),
    )
    return PrefillCost(p, engine)


@dataclass(frozen=True)
class KvCacheSize:
    """KV-cache bytes of a model next to the paper's full multi-head formula."""

    model: str
    attention: str
    context: int
    batch: int
    kv_precision: str
    bytes_per_token: float
    paper_mha_bytes_per_token: float
    kv_cache_bytes: float
    sliding_window: int | None


def kv_cache_size(
    model: str, *, context: int = 4096, batch: int = 1, kv_precision: str = "fp16"
) -> KvCacheSize:
    """Cache bytes per token and for ``batch`` x ``context`` tokens (MHA/GQA/MQA/MLA, sliding windows)."""
    arch = load_model(model)
    return KvCacheSize(
        model=arch.name,
        attention=arch.attention_kind,
        context=context,
        batch=batch,
        kv_precision=kv_precision,
        bytes_per_token=kv_bytes_per_token(arch, kv_precision),
        paper_mha_bytes_per_token=paper_kv_bytes_per_token(arch.num_layers, arch.hidden_size),
        kv_cache_bytes=kv_bytes(arch, context, batch=batch, precision=kv_precision),
        sliding_window=arch.sliding_window,
    )


@dataclass(frozen=True)
class MemoryFit:
    """Memory a model needs at a batch and context, and how many devices hold it."""

    model: str
    hardware: str
    weight_bytes: float
    kv_bytes: float
    memory_needed_bytes: float
    device_memory_bytes: float
    devices_needed: int
    max_batch_on_one_device: int
    total_params: float
    active_params: float


def memory_fit(
    model: str,
    hardware: str,
    *,
    precision: str | None = None,
    batch: int = 1,
    context: int = 4096,
    kv_precision: str = "fp16",
) -> MemoryFit:
    """Weights + KV cache, the devices needed (90% usable) and the largest batch one device holds."""
    if batch < 1 or context < 1:
        raise ConfigError(f"{'batch' if batch < 1 else 'context'} must be >= 1")
    arch, hw = load_model(model), load_hardware(hardware)
    w = weight_bytes(arch, precision)
    need = memory_needed(arch, precision=precision, batch=batch, context=context, kv_precision=kv_precision)
    per_seq = kv_bytes(arch, context, precision=kv_precision)
    max_b = int((USABLE_MEMORY_FRACTION * hw.memory_bytes - w) // per_seq) if per_seq else 0
    return MemoryFit(
        model=arch.name,
        hardware=hw.name,
        weight_bytes=w,
        kv_bytes=need - w,
        memory_needed_bytes=need,
        device_memory_bytes=hw.memory_bytes,
        devices_needed=devices_needed(need, hw.memory_bytes),
        max_batch_on_one_device=max(max_b, 0),
        total_params=arch.total_params(),
        active_params=arch.active_params(),
    )


@dataclass(frozen=True)
class ModelComparison:
    """Generalist vs specialist rows on one device, and the chart written (if any)."""

    hardware: Hardware
    rows: list[CompareRow]
    chart: Path | None


def compare_models(
    generalist: str,
    specialist: str,
    hardware: str,
    *,
    precision: str | None = "fp8",
    batches: Sequence[int] = (1, 8, 64),
    contexts: Sequence[int] = (1024,),
    generalist_tp: int | None = None,
    specialist_tp: int | None = None,
    pue: float = 1.0,
    engine: str = "roofline",
    price_per_hour: float | None = None,
    chart: Path | None = None,
) -> ModelComparison:
    """:func:`~cadre.costmodel.compare.compare` by catalog names; writes a bar chart when ``chart`` is given."""
    hw = load_hardware(hardware, price_per_hour=price_per_hour)
    rows = compare(
        load_model(generalist),
        load_model(specialist),
        hw,
        precision=precision,
        batches=tuple(batches),
        contexts=tuple(contexts),
        generalist_tp=generalist_tp,
        specialist_tp=specialist_tp,
        pue=pue,
        efficiency=efficiency_for_engine(engine, hw),
    )
    if chart:
        plot_compare(rows, chart, hardware=hw)
    return ModelComparison(hw, rows, chart)


@dataclass(frozen=True)
class RooflineChart:
    """A device's roofline at one compute precision with models' decode steps placed on it."""

    hardware: str
    precision: str
    peak_flops: float
    bandwidth: float
    ridge_point: float
    workloads: list[RooflineWorkload]
    written: list[str]

    def bound(self, point: RooflinePoint) -> str:
        """``compute`` at or right of the ridge point, else ``memory``."""
        return "compute" if point.arithmetic_intensity >= self.ridge_point else "memory"


def roofline_chart(
    hardware: str,
    models: Sequence[str],
    *,
    precision: str | None = "fp8",
    batches: Sequence[int] = (1, 8, 64, 256),
    context: int = 1024,
    tp: int = 1,
    paths: Sequence[Path] = (),
) -> RooflineChart:
    """Place each model's decode steps on ``hardware``'s roofline and write the chart to each of ``paths``."""
    hw = load_hardware(hardware)
    workloads = [
        roofline_workload(
            load_model(m), hw, precision=precision, batches=tuple(batches), context=context, tp=tp
        )
        for m in models
    ]
    written = [str(plot_roofline(hw, workloads, p, precision=precision or "bf16")) for p in paths]
    cp = compute_precision(precision or "bf16")
    return RooflineChart(
        hardware=hw.name,
        precision=cp,
        peak_flops=hw.flops(cp),
        bandwidth=hw.bandwidth(),
        ridge_point=hw.ridge_point(cp),
        workloads=workloads,
        written=written,
    )


@dataclass(frozen=True)
class TrainingCost:
    """Training compute (6ND), GPU time at an MFU, wall time on the GPUs and dollars."""

    params: float
    tokens: float
    flops: float
    gpu_seconds: float
    gpu_hours: float
    wall_days: float
    usd: float
    hardware: str
    mfu: float


def training_cost(
    *,
    params: float | None = None,
    tokens: float | None = None,
    compute: float | None = None,
    hardware: str = "h100-sxm",
    precision: str = "bf16",
    mfu: float = 0.4,
    gpus: int = 1,
    price_per_hour: float | None = None,
) -> TrainingCost:
    """Cost of training ``params`` on ``tokens``, or the Chinchilla-optimal pair for a ``compute`` budget."""
    if gpus < 1:
        raise ConfigError(f"gpus must be >= 1, got {gpus}")
    if compute is not None:
        params, tokens = chinchilla_optimal(compute)
    if params is None or tokens is None:
        raise ConfigError("give --params and --tokens, or --compute")
    hw = load_hardware(hardware, price_per_hour=price_per_hour)
    c = training_flops(params, tokens)
    gs = training_gpu_seconds(c, hw.flops(precision), mfu)
    return TrainingCost(
        params=params,
        tokens=tokens,
        flops=c,
        gpu_seconds=gs,
        gpu_hours=gs / 3600,
        wall_days=gs / gpus / 86400,
        usd=gs / 3600 * hw.price_per_hour,
        hardware=hw.name,
        mfu=mfu,
    )


@dataclass(frozen=True)
class SpeculativeEstimate:
    """Speculative decoding speedup with the draft cost from the roofline, next to the paper's formula."""

    hardware: str
    cost_ratio: float
    speedup: float
    paper_formula_speedup: float
    alpha: float
    gamma: int

    def to_json(self) -> dict[str, Any]:
        return {
            "cost_ratio": self.cost_ratio,
            "speedup": self.speedup,
            "paper_formula_speedup": self.paper_formula_speedup,
            "alpha": self.alpha,
            "gamma": self.gamma,
        }


def speculative_estimate(
    target: str,
    draft: str,
    hardware: str,
    *,
    precision: str | None = "fp8",
    alpha: float = 0.8,
    gamma: int = 4,
    target_tp: int = 1,
) -> SpeculativeEstimate:
    """Leviathan et al.'s speedup with c = draft step time ÷ target step time (both at batch 1)."""
    hw = load_hardware(hardware)
    t = decode_step(load_model(target), hw, precision=precision, tp=target_tp)
    d = decode_step(load_model(draft), hw, precision=precision)
    c = d.seconds_per_token / t.seconds_per_token
    return SpeculativeEstimate(
        hardware=hw.name,
        cost_ratio=c,
        speedup=speculative_speedup(alpha, gamma, c),
        paper_formula_speedup=paper_speedup(1.0, alpha),
        alpha=alpha,
        gamma=gamma,
    )


def hardware_catalog() -> list[Hardware]:
    """Every device of the hardware catalog."""
    return [load_hardware(n) for n in hardware_names()]


@dataclass(frozen=True)
class ModelCatalogEntry:
    """One architecture of the model catalog with its sizes and fp16 KV bytes per token."""

    arch: ModelArch
    kv_bytes_per_token: float

    def to_json(self) -> dict[str, Any]:
        m = self.arch
        return {
            "name": m.name,
            "total_params": m.total_params(),
            "active_params": m.active_params(),
            "attention": m.attention_kind,
            "kv_bytes_per_token": self.kv_bytes_per_token,
        }


def model_catalog() -> list[ModelCatalogEntry]:
    """Every architecture of the model catalog."""
    entries = []
    for name in model_names():
        arch = load_model(name)
        entries.append(ModelCatalogEntry(arch, kv_bytes_per_token(arch)))
    return entries
