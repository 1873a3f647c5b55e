"""Score the cost model against published measurements (``data/validation.yaml``).

Each measurement becomes phases (prefill, decode steps) whose ideal memory and compute times come from the
roofline (:mod:`cadre.costmodel.roofline`). Efficiency factors (achieved share of bandwidth and of peak
FLOP/s, per engine) and fixed overheads (per layer, per request) are fitted by robust least squares in log
space with a weak prior; the report gives the in-sample error, the leave-one-source-out error (each source
predicted from factors fitted on the others, priors where its engine is unseen), and the ideal roofline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import yaml
from pydantic import Field

from cadre.config.base import StrictModel, parse_spec
from cadre.costmodel.arch import ModelArch, load_model
from cadre.costmodel.hardware import Hardware, load_hardware
from cadre.costmodel.kv import kv_bytes
from cadre.costmodel.quant import compute_precision
from cadre.costmodel.roofline import Efficiency, decode_step, prefill

__all__ = [
    "Measurement",
    "ValidationReport",
    "engine_efficiency",
    "engine_errors",
    "engine_errors_yaml",
    "fit_efficiency",
    "load_validation_set",
    "validate",
]

Kind = Literal["decode_tps", "prefill_tps", "static_batch", "ttft", "latency", "max_throughput"]


class Measurement(StrictModel):
    """One published figure and the workload that produced it."""

    id: str
    source: str
    engine: str
    hardware: str
    model: str
    precision: str
    kind: Kind
    batch: int = Field(ge=1)
    tp: int = Field(default=1, ge=1)
    input_len: int = Field(ge=0)
    output_len: int = Field(ge=0)
    value: float = Field(gt=0)
    unit: str
    kv_precision: str = "fp16"
    note: str = ""


class ValidationSet(StrictModel):
    sources: dict[str, str]
    measurements: list[Measurement]


@cache
def load_validation_set() -> ValidationSet:
    """The shipped validation set."""
    text = resources.files("cadre.costmodel").joinpath("data/validation.yaml").read_text(encoding="utf-8")
    return parse_spec(ValidationSet, yaml.safe_load(text), source="validation.yaml")


@dataclass(frozen=True)
class _Phase:
    count: float
    mem_s: float
    comp_s: float
    comm_s: float
    layers: float
    requests: float


@dataclass(frozen=True)
class _Case:
    m: Measurement
    phases: tuple[_Phase, ...]
    numerator: float  # value = numerator / time (throughputs), or time * 1000 when numerator == 0 (ms)
    keys: tuple[str, str, str, str]  # bandwidth, compute, layer overhead, request overhead


def _max_batch(model: ModelArch, hw: Hardware, m: Measurement) -> int:
    """Sequences that fit: (90% of memory − weights) ÷ KV of one sequence at input+output tokens, ≤ cap."""
    from cadre.costmodel.roofline import weight_bytes

    free = 0.9 * m.tp * hw.memory_bytes - weight_bytes(model, m.precision)
    per_seq = kv_bytes(model, m.input_len + m.output_len, precision=m.kv_precision)
    return max(1, min(m.batch, int(free // per_seq)))


def _case(m: Measurement) -> _Case:
    model, hw = load_model(m.model), load_hardware(m.hardware)
    common = {"precision": m.precision, "tp": m.tp, "kv_precision": m.kv_precision, "enforce_memory": False}
    L = model.num_layers

    def step(batch: int, ctx: int) -> _Phase:
        d = decode_step(model, hw, batch=batch, context=ctx, **common)  # type: ignore[arg-type]
        return _Phase(1.0, d.memory_seconds, d.compute_seconds, d.comm_seconds, L, 0.0)

    def pre(batch: int, tokens: int, *, with_weights: bool = True) -> _Phase:
        p = prefill(model, hw, prompt_tokens=tokens, batch=batch, **common)  # type: ignore[arg-type]
        return _Phase(
            1.0,
            p.memory_seconds if with_weights else 0.0,
            p.compute_seconds,
            p.comm_seconds,
            L if with_weights else 0.0,
            1.0,
        )

    b, isl, osl = m.batch, m.input_len, m.output_len
    mid = isl + osl // 2
    phases: tuple[_Phase, ...]
    if m.kind == "decode_tps":
        phases, num = (step(1, mid),), 1.0
    elif m.kind == "prefill_tps":
        phases, num = (pre(b, isl),), float(b * isl)
    elif m.kind == "ttft":
        phases, num = (pre(1, isl),), 0.0
    elif m.kind in ("static_batch", "latency"):
        s = step(b, mid)
        phases = (pre(b, isl), _Phase(osl, s.mem_s, s.comp_s, s.comm_s, s.layers, 0.0))
        num = float(b * osl) / m.tp if m.kind == "static_batch" else 0.0
    else:  # max_throughput: continuous batching; each request's prefill is compute riding on decode steps
        bm = _max_batch(model, hw, m)
        s = step(bm, mid)
        p = pre(1, isl, with_weights=False)
        phases = (
            _Phase(osl, s.mem_s, s.comp_s, s.comm_s, s.layers, 0.0),
            _Phase(bm, 0.0, p.comp_s, 0.0, 0.0, 0.0),
        )
        num = float(bm * osl)
    cprec = compute_precision(m.precision)
    keys = (
        f"bandwidth:{m.engine}",
        f"compute:{m.engine}/{cprec}",
        f"layer_overhead:{m.engine}",
        f"request_overhead:{m.engine}",
    )
    return _Case(m, phases, num, keys)


# Prior (and fallback) values of each factor, and the prior's spread in natural-log units.
_PRIOR = {"bandwidth": 0.8, "compute": 0.6, "layer_overhead": 2e-5, "request_overhead": 1e-3}
_PRIOR_SIGMA = {
    "bandwidth": math.log(2),
    "compute": math.log(2),
    "layer_overhead": math.log(10),
    "request_overhead": math.log(10),
}
_BOUNDS = {
    "bandwidth": (0.05, 1.0),
    "compute": (0.05, 1.0),
    "layer_overhead": (1e-8, 1e-2),
    "request_overhead": (1e-6, 1.0),
}


def _predict(case: _Case, params: dict[str, float]) -> float:
    bw, comp, lay, req = (params.get(k, _PRIOR[k.split(":")[0]]) for k in case.keys)
    t = 0.0
    for ph in case.phases:
        t += ph.count * (
            max(ph.mem_s / bw, ph.comp_s / comp) + ph.comm_s + ph.layers * lay + ph.requests * req
        )
    return case.numerator / t if case.numerator else t * 1000.0


def fit_efficiency(cases: list[_Case]) -> dict[str, float]:
    """Fit the factors that these cases use (robust soft-L1 least squares on log errors, weak priors)."""
    from scipy.optimize import least_squares

    names = sorted({k for c in cases for k in c.keys})
    if not names:
        return {}
    kinds = [n.split(":")[0] for n in names]
    x0 = np.array([math.log(_PRIOR[k]) for k in kinds])
    lo = np.array([math.log(_BOUNDS[k][0]) for k in kinds])
    hi = np.array([math.log(_BOUNDS[k][1]) for k in kinds])
    sig = np.array([_PRIOR_SIGMA[k] for k in kinds])
    meas = np.array([c.m.value for c in cases])

    def resid(x: np.ndarray) -> np.ndarray:
        p = dict(zip(names, np.exp(x), strict=True))
        pred = np.array([_predict(c, p) for c in cases])
        return np.concatenate([np.log(pred / meas), (x - x0) / sig * 0.1])

    sol = least_squares(resid, np.clip(x0, lo, hi), bounds=(lo, hi), loss="soft_l1", f_scale=0.1)
    return dict(zip(names, (float(v) for v in np.exp(sol.x)), strict=True))


@dataclass
class ValidationRow:
    id: str
    source: str
    engine: str
    hardware: str
    model: str
    kind: str
    unit: str
    measured: float
    predicted: float
    loso_predicted: float
    ideal_predicted: float
    error_pct: float
    loso_error_pct: float


@dataclass
class ValidationReport:
    n: int
    n_sources: int
    n_hardware: int
    hardware_families: list[str]
    median_abs_pct_error: float
    share_within_30pct: float
    loso_median_abs_pct_error: float
    loso_share_within_30pct: float
    ideal_median_abs_pct_error: float
    ideal_share_within_30pct: float
    per_source: dict[str, dict[str, float]]
    efficiency: dict[str, float]
    per_engine: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: list[ValidationRow] = field(default_factory=list)


def _stats(errs: list[float]) -> tuple[float, float]:
    a = np.abs(np.array(errs))
    return float(np.median(a)), float(np.mean(a <= 30.0))


def _group_stats(sub: list[ValidationRow]) -> dict[str, float]:
    """n, fitted and leave-one-source-out median |error| and share within ±30% of some rows."""
    m1, w1 = _stats([r.error_pct for r in sub])
    m2, w2 = _stats([r.loso_error_pct for r in sub])
    return {
        "n": len(sub),
        "median_abs_pct_error": m1,
        "share_within_30pct": w1,
        "loso_median_abs_pct_error": m2,
        "loso_share_within_30pct": w2,
    }


def validate(*, loso: bool = True) -> ValidationReport:
    """Predict every shipped measurement; report fitted, leave-one-source-out and ideal-roofline errors."""
    vs = load_validation_set()
    cases = [_case(m) for m in vs.measurements]
    params = fit_efficiency(cases)
    ideal = {
        k: (1.0 if k.split(":")[0] in ("bandwidth", "compute") else 1e-12) for c in cases for k in c.keys
    }
    loso_pred: dict[str, float] = {}
    for src in sorted({c.m.source for c in cases}) if loso else []:
        p = fit_efficiency([c for c in cases if c.m.source != src])
        for c in cases:
            if c.m.source == src:
                loso_pred[c.m.id] = _predict(c, p)
    rows = []
    for c in cases:
        pred = _predict(c, params)
        lp = loso_pred.get(c.m.id, pred)
        rows.append(
            ValidationRow(
                id=c.m.id,
                source=c.m.source,
                engine=c.m.engine,
                hardware=c.m.hardware,
                model=c.m.model,
                kind=c.m.kind,
                unit=c.m.unit,
                measured=c.m.value,
                predicted=pred,
                loso_predicted=lp,
                ideal_predicted=_predict(c, ideal),
                error_pct=100 * (pred / c.m.value - 1),
                loso_error_pct=100 * (lp / c.m.value - 1),
            )
        )
    med, within = _stats([r.error_pct for r in rows])
    lmed, lwithin = _stats([r.loso_error_pct for r in rows])
    imed, iwithin = _stats([100 * (r.ideal_predicted / r.measured - 1) for r in rows])
    per_source = {
        src: _group_stats([r for r in rows if r.source == src]) for src in sorted({r.source for r in rows})
    }
    per_engine = {
        e: _group_stats([r for r in rows if r.engine == e]) for e in sorted({r.engine for r in rows})
    }
    fams = sorted({load_hardware(r.hardware).family for r in rows})
    return ValidationReport(
        n=len(rows),
        n_sources=len(per_source),
        n_hardware=len({r.hardware for r in rows}),
        hardware_families=fams,
        median_abs_pct_error=med,
        share_within_30pct=within,
        loso_median_abs_pct_error=lmed,
        loso_share_within_30pct=lwithin,
        ideal_median_abs_pct_error=imed,
        ideal_share_within_30pct=iwithin,
        per_source=per_source,
        efficiency=params,
        per_engine=per_engine,
        rows=rows,
    )


def engine_efficiency(engine: str) -> Efficiency:
    """The efficiency factors fitted for ``engine`` (llama.cpp-metal, llama.cpp-cuda, trt-llm, vllm) on the
    shipped validation set, as an :class:`~cadre.costmodel.roofline.Efficiency` for ``decode_step``."""
    from cadre.errors import did_you_mean

    params = _fitted_params()
    engines = sorted({k.split(":", 1)[1].split("/")[0] for k in params})
    if engine not in engines:
        raise did_you_mean(engine, engines, kind="engine")
    comp = [v for k, v in params.items() if k.startswith(f"compute:{engine}/")]
    return Efficiency(
        bandwidth=params[f"bandwidth:{engine}"],
        compute=float(np.median(comp)) if comp else _PRIOR["compute"],
        layer_overhead_s=params[f"layer_overhead:{engine}"],
        request_overhead_s=params[f"request_overhead:{engine}"],
    )


ENGINE_ERRORS_FILE = "data/engine_errors.yaml"


@cache
def engine_errors() -> dict[str, dict[str, float]]:
    """Per engine: n and the fitted and leave-one-source-out errors on the shipped set, as recorded in
    ``data/engine_errors.yaml`` (a refit takes ~20 s; a test checks the file against a fresh :func:`validate`)."""
    text = resources.files("cadre.costmodel").joinpath(ENGINE_ERRORS_FILE).read_text(encoding="utf-8")
    data: dict[str, dict[str, float]] = yaml.safe_load(text)["engines"]
    return data


def engine_errors_yaml(report: ValidationReport) -> str:
    """The text of ``data/engine_errors.yaml`` for ``report`` (figures rounded to 0.1 points)."""
    keys = ("n", "median_abs_pct_error", "loso_median_abs_pct_error", "loso_share_within_30pct")
    engines = {
        e: {
            k: (int(v[k]) if k == "n" else round(float(v[k]) * (100 if "share" in k else 1), 1)) for k in keys
        }
        for e, v in report.per_engine.items()
    }
    head = (
        "# Per-engine error of `cadre cost validate` (written from costmodel.validation.engine_errors_yaml;\n"
        "# tests/costmodel/test_validate.py checks it against a fresh fit). Shares are percent.\n"
    )
    return head + yaml.safe_dump({"engines": engines}, sort_keys=True)


@cache
def _fitted_params() -> dict[str, float]:
    return fit_efficiency([_case(m) for m in load_validation_set().measurements])
