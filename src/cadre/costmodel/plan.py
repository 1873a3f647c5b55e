"""``cadre cost plan``: hosted APIs and self-hosted models priced side by side for one workload.

Per option: the replicas (and devices) that serve the peak hour within the latency target and the utilization
ceiling, the monthly cost, cost per 1k requests (and per 1k *correct* answers when quality is known); across
options: the volumes where the cheaper one changes (break-even) and an API-price sensitivity table.

Self-hosted capacity uses the static-batching model of :mod:`cadre.costmodel.validation` (kind
``static_batch``): a replica prefills ``B`` prompts, then decodes ``output_tokens`` steps at batch ``B``, so a
request takes ``prefill(B) + output_tokens × step(B)`` and a replica serves ``B ÷ that`` requests per second.
The largest batch (a power of two) whose latency meets the p95 target is used; queueing is covered by the
utilization ceiling, not modelled. Costs are provisioned for the peak hour around the clock (no autoscaling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.costmodel.arch import ModelArch, load_model
from cadre.costmodel.compare import devices_for
from cadre.costmodel.engines import resolve_engine
from cadre.costmodel.hardware import Hardware, load_hardware
from cadre.costmodel.parallel import USABLE_MEMORY_FRACTION
from cadre.costmodel.plan_spec import HOURS_PER_MONTH, ApiOption, PlanSpec, SelfHostedOption, Workload
from cadre.costmodel.prices import ApiPrice, ApiPriceTable, api_request_cost, load_api_prices
from cadre.costmodel.roofline import Efficiency, decode_step, memory_needed, prefill
from cadre.errors import CapacityError, did_you_mean

__all__ = ["BreakEven", "CostPlan", "OptionPlan", "SensitivityRow", "cost_at_volume", "plan_costs"]

_MAX_STEPS = 20000  # replica-count steps scanned per option when looking for break-even volumes


@dataclass(frozen=True)
class OptionPlan:
    """One option priced for the workload."""

    name: str
    kind: str  # "api" or "self_hosted"
    summary: str
    input_tokens: float
    output_tokens: float
    monthly_usd: float
    usd_per_1k_requests: float
    quality: float | None
    usd_per_1k_correct: float | None
    meets_latency: bool | None  # None: not modelled (hosted APIs)
    latency_s: float | None  # modelled request latency at the chosen batch
    devices: int
    replicas: int
    tp: int
    batch: int
    requests_per_second_per_replica: float | None
    mean_utilization: float | None  # mean load ÷ provisioned capacity
    engine: str | None
    engine_label: str | None
    usd_per_device_month: float  # rent, or amortized purchase + power × PUE
    usd_per_request: float  # the API bill of one request (0 for self-hosted)
    requests_per_replica_month: float | None  # monthly volume one replica serves within the ceiling at peak
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BreakEven:
    """Volumes (requests per month, up to ``up_to``) at which the cheaper of two options changes."""

    a: str
    b: str
    cheaper_at_plan: str
    crossings: list[float]
    up_to: float


@dataclass(frozen=True)
class SensitivityRow:
    """Every option's monthly cost with the API prices multiplied by ``factor``."""

    factor: float
    monthly_usd: dict[str, float]
    cheapest: str | None
    cheapest_per_correct: str | None


@dataclass
class CostPlan:
    workload: Workload
    peak_factor: float
    mean_requests_per_second: float
    peak_requests_per_second: float
    options: list[OptionPlan]
    cheapest: str | None
    cheapest_per_correct: str | None
    break_evens: list[BreakEven]
    sensitivity: list[SensitivityRow]
    chart: str | None = None

    def option(self, name: str) -> OptionPlan:
        for o in self.options:
            if o.name == name:
                return o
        raise did_you_mean(name, [o.name for o in self.options], kind="option")


def cost_at_volume(o: OptionPlan, requests_per_month: float, *, api_factor: float = 1.0) -> float:
    """Monthly dollars of option ``o`` at another volume (same request size, profile and service level)."""
    if o.requests_per_replica_month is None:
        return o.usd_per_request * api_factor * requests_per_month
    replicas = max(1, math.ceil(requests_per_month / o.requests_per_replica_month - 1e-9))
    return replicas * o.tp * o.usd_per_device_month


def _api_price(o: ApiOption, table: ApiPriceTable) -> tuple[ApiPrice, str, str]:
    """The price, a short label and where it came from."""
    if o.input_usd_per_m is not None and o.output_usd_per_m is not None:
        p = ApiPrice(input=o.input_usd_per_m, output=o.output_usd_per_m, cached=o.cached_usd_per_m)
        return p, "given", "prices given in the plan"
    key = o.price or o.name
    if key not in table.models:
        raise did_you_mean(
            key, table.models, kind="API price (give input_usd_per_m/output_usd_per_m instead)"
        )
    p = table.models[key]
    return p, f"{key}, {p.as_of or 'undated'}", f"price of {key} as of {p.as_of or '?'}: {p.source or '?'}"


def _api(o: ApiOption, w: Workload, table: ApiPriceTable) -> OptionPlan:
    price, label, where = _api_price(o, table)
    n_in, n_out = o.input_tokens or w.input_tokens, o.output_tokens or w.output_tokens
    per_req = api_request_cost(n_in, n_out, price, cached_share=w.cached_input_share)
    notes = [where, "latency not modelled for hosted APIs"]
    if w.cached_input_share > 0 and price.cached is None:
        notes.append("no cached-input price known: cached tokens billed at the input price")
    monthly = per_req * w.requests_per_month
    return OptionPlan(
        name=o.name,
        kind="api",
        summary=f"${price.input:g} in / ${price.output:g} out"
        + ("" if price.cached is None else f" / ${price.cached:g} cached")
        + f" per 1M tokens ({label})",
        input_tokens=n_in,
        output_tokens=n_out,
        monthly_usd=monthly,
        usd_per_1k_requests=per_req * 1000,
        quality=o.quality,
        usd_per_1k_correct=per_req * 1000 / o.quality if o.quality else None,
        meets_latency=None,
        latency_s=None,
        devices=0,
        replicas=0,
        tp=0,
        batch=0,
        requests_per_second_per_replica=None,
        mean_utilization=None,
        engine=None,
        engine_label=None,
        usd_per_device_month=0.0,
        usd_per_request=per_req,
        requests_per_replica_month=None,
        notes=notes,
    )


def _device_month(o: SelfHostedOption, hw: Hardware) -> tuple[float, str]:
    """Monthly dollars per device: rent × hours, or purchase ÷ months + TDP × PUE × hours × $/kWh."""
    if o.pricing == "rent":
        return hw.price_per_hour * HOURS_PER_MONTH, f"rent ${hw.price_per_hour:g}/device-hour"
    assert o.purchase_usd is not None
    capex = o.purchase_usd / (o.amortization_years * 12.0)
    # energy at TDP (an upper bound on draw) × PUE, around the clock
    energy = hw.tdp_watts / 1000.0 * o.pue * HOURS_PER_MONTH * o.usd_per_kwh
    return capex + energy, (
        f"buy ${o.purchase_usd:,.0f}/device over {o.amortization_years:g} y + {hw.tdp_watts:g} W × PUE {o.pue:g} "
        f"at ${o.usd_per_kwh:g}/kWh"
    )


def _batch_latency(
    arch: ModelArch,
    hw: Hardware,
    o: SelfHostedOption,
    batch: int,
    n_in: int,
    n_out: int,
    tp: int,
    eff: Efficiency,
) -> float:
    """Static batch: prefill ``batch`` prompts, then ``n_out`` decode steps at the mean context."""
    common: dict[str, Any] = {"precision": o.precision, "tp": tp, "efficiency": eff, "enforce_memory": False}
    pre = prefill(arch, hw, prompt_tokens=n_in, batch=batch, **common)
    step = decode_step(arch, hw, batch=batch, context=n_in + n_out // 2, **common)
    return pre.seconds + n_out * step.seconds_per_token


def _self_hosted(o: SelfHostedOption, w: Workload) -> OptionPlan:
    arch = load_model(o.model)
    hw = load_hardware(o.hardware, price_per_hour=o.price_per_hour)
    choice = resolve_engine(o.engine, hw)
    n_in = max(1, round(o.input_tokens or w.input_tokens))
    n_out = max(1, round(o.output_tokens or w.output_tokens))
    ctx = n_in + n_out
    tp = o.tp or devices_for(arch, hw, precision=o.precision, batch=1, context=ctx)
    usable = USABLE_MEMORY_FRACTION * tp * hw.memory_bytes

    def fits(b: int) -> bool:
        return memory_needed(arch, precision=o.precision, batch=b, context=ctx) <= usable

    if not fits(1):
        raise CapacityError(
            f"options.{o.name}: {arch.name} does not fit on {tp} x {hw.name}; raise tp or lower the precision"
        )
    best: tuple[int, float] | None = None  # (batch, latency)
    first = (1, _batch_latency(arch, hw, o, 1, n_in, n_out, tp, choice.efficiency))
    b = 1
    while b <= o.max_batch and fits(b):
        lat = first[1] if b == 1 else _batch_latency(arch, hw, o, b, n_in, n_out, tp, choice.efficiency)
        if w.p95_latency_s is not None and lat > w.p95_latency_s:
            break
        if best is None or b / lat > best[0] / best[1]:
            best = (b, lat)
        b *= 2
    meets = best is not None if w.p95_latency_s is not None else None
    batch, latency = best or first
    rps = batch / latency
    replicas = max(1, math.ceil(w.peak_requests_per_second / (w.utilization_ceiling * rps) - 1e-9))
    per_device, how = _device_month(o, hw)
    devices = replicas * tp
    monthly = devices * per_device
    per_replica_month = rps * w.utilization_ceiling * 3600.0 * HOURS_PER_MONTH / w.peak
    notes = [how, f"engine: {choice.label}"]
    if meets is False:
        notes.append(
            f"does not meet p95 {w.p95_latency_s:g} s: {latency:.2f} s even at batch 1; raise tp, use faster "
            "hardware or a smaller model"
        )
    if choice.ideal:
        notes.append("ideal roofline: real engines are slower, so this cost is a lower bound")
    prec = o.precision or arch.file_precision or "bf16"
    return OptionPlan(
        name=o.name,
        kind="self_hosted",
        summary=f"{arch.name} ({prec}) on {devices} x {hw.name} ({replicas} replica(s) of tp {tp}, batch {batch})",
        input_tokens=float(n_in),
        output_tokens=float(n_out),
        monthly_usd=monthly,
        usd_per_1k_requests=monthly / w.requests_per_month * 1000,
        quality=o.quality,
        usd_per_1k_correct=monthly / w.requests_per_month * 1000 / o.quality if o.quality else None,
        meets_latency=meets,
        latency_s=latency,
        devices=devices,
        replicas=replicas,
        tp=tp,
        batch=batch,
        requests_per_second_per_replica=rps,
        mean_utilization=w.mean_requests_per_second / (replicas * rps),
        engine=choice.engine,
        engine_label=choice.label,
        usd_per_device_month=per_device,
        usd_per_request=0.0,
        requests_per_replica_month=per_replica_month,
        notes=notes,
    )


def _sign(x: float) -> int:
    return (x > 1e-9) - (x < -1e-9)


def _crossings(a: OptionPlan, b: OptionPlan, up_to: float, limit: int = 4) -> list[float]:
    """Volumes in (0, up_to] where sign(cost_a − cost_b) changes: at replica steps or where lines cross."""
    bounds: set[float] = {up_to}
    for o in (a, b):
        v = o.requests_per_replica_month
        if v is not None:
            bounds.update(k * v for k in range(1, min(_MAX_STEPS, int(up_to // v)) + 1))
    out: list[float] = []
    prev, last = 0.0, 0
    for end in sorted(bounds):
        if end <= prev:
            continue
        start = prev + min(1e-6 * end, (end - prev) / 2)
        d0 = cost_at_volume(a, start) - cost_at_volume(b, start)
        d1 = cost_at_volume(a, end) - cost_at_volume(b, end)
        if last and _sign(d0) and _sign(d0) != last:
            out.append(prev)  # the order flips at a replica step
        if _sign(d0) and _sign(d1) and _sign(d0) != _sign(d1):
            slope = (d1 - d0) / (end - start)
            out.append(start - d0 / slope)  # the two lines cross inside the segment
        last = _sign(d1) or _sign(d0) or last
        prev = end
        if len(out) >= limit:
            break
    return out[:limit]


def _cheapest(options: list[OptionPlan], monthly: dict[str, float], *, per_correct: bool) -> str | None:
    ok = [o for o in options if o.meets_latency is not False and (o.quality or not per_correct)]
    if not ok:
        return None
    return min(ok, key=lambda o: monthly[o.name] / (o.quality if per_correct and o.quality else 1.0)).name


def plan_costs(spec: PlanSpec, *, prices: ApiPriceTable | None = None, chart: Path | None = None) -> CostPlan:
    """Price every option of ``spec`` for its workload; write the chart (PNG/SVG) when ``chart`` is given."""
    w = spec.workload
    table = prices or load_api_prices(spec.prices)
    options = [_api(o, w, table) if isinstance(o, ApiOption) else _self_hosted(o, w) for o in spec.options]
    monthly = {o.name: o.monthly_usd for o in options}
    up_to = 100.0 * w.requests_per_month
    breaks = []
    for i, a in enumerate(options):
        for b in options[i + 1 :]:
            cheaper = a.name if a.monthly_usd <= b.monthly_usd else b.name
            breaks.append(BreakEven(a.name, b.name, cheaper, _crossings(a, b, up_to), up_to))
    sens = []
    for f in spec.sensitivity:
        m = {o.name: o.monthly_usd * (f if o.kind == "api" else 1.0) for o in options}
        sens.append(
            SensitivityRow(
                f, m, _cheapest(options, m, per_correct=False), _cheapest(options, m, per_correct=True)
            )
        )
    result = CostPlan(
        workload=w,
        peak_factor=w.peak,
        mean_requests_per_second=w.mean_requests_per_second,
        peak_requests_per_second=w.peak_requests_per_second,
        options=options,
        cheapest=_cheapest(options, monthly, per_correct=False),
        cheapest_per_correct=_cheapest(options, monthly, per_correct=True),
        break_evens=breaks,
        sensitivity=sens,
    )
    if chart is not None:
        from cadre.costmodel.plot import plot_plan

        result.chart = str(plot_plan(result, chart, cost_at=cost_at_volume))
    return result
