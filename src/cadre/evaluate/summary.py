"""The figures of a run, computed from its records: metrics, latency, cost, paired comparisons, robustness.

:func:`summarize` recomputes everything from ``items.jsonl`` (no generation); the result is typed
(:class:`~cadre.evaluate.results.RunSummary`) and is what ``summary.json`` holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadre.config.base import parse_spec
from cadre.errors import CadreError, ConfigError, DataError, did_you_mean
from cadre.evaluate.cost import PriceTable, busy_time, load_prices, summarize_cost
from cadre.evaluate.metrics import JsonFieldMatch, Metric, normalize_label
from cadre.evaluate.perturb import get_perturbation
from cadre.evaluate.records import (
    ORIGINAL,
    PROBE_FILE,
    RUN_FILE,
    TIMING_FILE,
    RecordKey,
    latest_records,
    read_jsonl_lines,
    read_run,
    read_run_records,
)
from cadre.evaluate.results import LatencyStats, RobustnessResult, RunSummary, SystemResult
from cadre.evaluate.stats import Comparison, paired_bootstrap, paired_comparison, spread
from cadre.evaluate.systems import SystemSpec
from cadre.evaluate.task import TaskSpec

__all__ = ["compare_run", "compare_systems", "shots_for", "step_accuracy", "step_matches", "summarize"]


def shots_for(spec: SystemSpec, task: TaskSpec) -> int:
    """The few-shot exemplars a system gets: its own ``shots``, else the task's ``prompt.few_shot.k``."""
    return task.prompt.few_shot.k if spec.shots is None else spec.shots


def _canonical(pred: Any) -> str:
    if pred is None:
        return "\x00none"
    if isinstance(pred, dict):
        return json.dumps({k: _canonical(v) for k, v in pred.items()}, sort_keys=True)
    if isinstance(pred, bool):
        return str(pred)
    if isinstance(pred, int | float):
        return repr(float(pred))
    return normalize_label(pred)


def _shots(spec: SystemSpec, task: TaskSpec) -> int:
    return task.prompt.few_shot.k if spec.shots is None else spec.shots


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def _latency(recs: Sequence[Mapping[str, Any]]) -> LatencyStats:
    ok = [r for r in recs if not r.get("error") and r.get("latency_s") is not None]
    levels = {int(r.get("concurrency") or 1) for r in ok}
    lat = [float(r["latency_s"]) for r in ok]
    ttft = [float(r["ttft_s"]) for r in ok if r.get("ttft_s") is not None]
    pt = [float(r["prompt_tokens"]) for r in ok if r.get("prompt_tokens") is not None]
    ct = [float(r["completion_tokens"]) for r in ok if r.get("completion_tokens") is not None]
    return LatencyStats(
        n=len(lat),
        mean_s=float(np.mean(lat)) if lat else None,
        p50_s=_percentile(lat, 50),
        p95_s=_percentile(lat, 95),
        ttft_p50_s=_percentile(ttft, 50),
        prompt_tokens_mean=float(np.mean(pt)) if pt else None,
        completion_tokens_mean=float(np.mean(ct)) if ct else None,
        values_s=lat,
        concurrency=levels.pop() if len(levels) == 1 else None,
    )


def _solo_latency(probe: Sequence[Mapping[str, Any]], at: LatencyStats) -> LatencyStats | None:
    """One-at-a-time latency: the run's own when it ran one at a time, else the probe's records."""
    if at.concurrency == 1:
        return at
    return _latency(probe) if any(not r.get("error") for r in probe) else None


def _scores_by_item(
    recs: Mapping[RecordKey, dict[str, Any]],
    system: str,
    pname: str,
    ids: Sequence[str],
    repeats: int,
) -> dict[str, list[dict[str, Any]]]:
    """item id -> its records over the repeats (only items with a record for every repeat)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i in ids:
        rows = [recs.get((system, i, pname, r)) for r in range(repeats)]
        if all(row is not None for row in rows):
            out[i] = [row for row in rows if row is not None]
    return out


_STEP_MATCH = JsonFieldMatch(abs_tol=0.005)  # numbers to the cent, text ignoring case and punctuation


def step_matches(output: Any, reference: Any) -> bool:
    """A pipeline step's output against its reference: every field of an object, else the one value."""
    if isinstance(reference, Mapping):
        return _STEP_MATCH.score(output, reference) >= 1.0 - 1e-9
    return _STEP_MATCH.field_matches(output, reference)


def step_accuracy(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per step id: the share of records whose step output matches the record's ``step_references`` (a failed
    run counts as wrong at every step); empty when the records carry no per-step references."""
    scored: dict[str, list[bool]] = {}
    for r in rows:
        refs = r.get("step_references")
        if not isinstance(refs, Mapping):
            continue
        outputs = r.get("step_outputs") or {}
        for sid, ref in refs.items():
            scored.setdefault(str(sid), []).append(step_matches(outputs.get(sid), ref))
    return {sid: float(np.mean(v)) for sid, v in scored.items()}


def _metric_value(metric: Metric, rows: Sequence[Mapping[str, Any]]) -> float:
    if not rows:
        return float("nan")
    return float(metric.aggregate([r.get("prediction") for r in rows], [r.get("reference") for r in rows]))


def summarize(
    run_dir: str | Path,
    *,
    prices: PriceTable | str | Path | None = None,
    baseline: str | None = None,
    resamples: int = 10_000,
    confidence: float = 0.95,
) -> RunSummary:
    """Recompute every figure of a run from its records (no generation): metrics, latency, cost, statistics."""
    meta = read_run(run_dir)
    task = parse_spec(TaskSpec, meta["task"], source=f"{run_dir}/{RUN_FILE}: task")
    specs = {s["name"]: parse_spec(SystemSpec, s, source=f"{run_dir}/{RUN_FILE}") for s in meta["systems"]}
    metric = task.build_metric()
    price_table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    ids: list[str] = list(meta["item_ids"])
    repeats = int(meta.get("repeats", 1))
    recs = latest_records(read_run_records(run_dir))
    busy = busy_time(read_jsonl_lines(Path(run_dir) / TIMING_FILE))
    probe: dict[str, list[dict[str, Any]]] = {}
    for r in read_jsonl_lines(Path(run_dir) / PROBE_FILE):
        probe.setdefault(str(r.get("system")), []).append(r)
    names = list(specs)
    base = baseline or meta.get("baseline") or names[0]
    if base not in specs:
        raise ConfigError(f"baseline {base!r} is not a system of this run ({', '.join(names)})")

    results: dict[str, SystemResult] = {}
    per_item: dict[str, dict[str, list[dict[str, Any]]]] = {}
    complete = True
    for name, spec in specs.items():
        rows_by_item = _scores_by_item(recs, name, ORIGINAL, ids, repeats)
        per_item[name] = rows_by_item
        all_rows = [r for rows in rows_by_item.values() for r in rows]
        expected = len(ids) * repeats
        complete &= len(all_rows) == expected
        per_repeat = [
            _metric_value(metric, [rows[r] for rows in rows_by_item.values()]) for r in range(repeats)
        ]
        failures = sum(1 for r in all_rows if r.get("error"))
        routes: dict[str, int] = {}
        for r in all_rows:
            if r.get("route"):
                routes[str(r["route"])] = routes.get(str(r["route"]), 0) + 1
        errors = list(dict.fromkeys(str(r["error"]) for r in all_rows if r.get("error")))[:5]
        latency = _latency(all_rows)
        results[name] = SystemResult(
            name=name,
            kind=spec.kind,
            model={"routed": spec.router, "pipeline": f"pipeline:{spec.pipeline}"}.get(spec.kind, spec.model),
            adapter=spec.adapter,
            shots=shots_for(spec, task),
            n=len(rows_by_item),
            expected=len(ids),
            metric=float(np.mean(per_repeat)) if all_rows else float("nan"),
            accuracy=float(np.mean([bool(r.get("correct")) for r in all_rows])) if all_rows else float("nan"),
            failures=failures,
            failure_rate=failures / len(all_rows) if all_rows else 0.0,
            latency=latency,
            latency_solo=_solo_latency(probe.get(name, []), latency),
            cost=summarize_cost(spec, all_rows, price_table, specs=specs, busy=busy),
            repeats=spread(per_repeat) if repeats > 1 and all_rows else None,
            routes=routes,
            errors=errors,
            step_accuracy=step_accuracy(all_rows),
        )

    comparisons = []
    for name in names:
        if name == base:
            continue
        comparisons_c = compare_systems(
            per_item[name], per_item[base], metric, a=name, b=base, resamples=resamples, confidence=confidence
        )
        if comparisons_c is not None:
            comparisons.append(comparisons_c)

    robustness = []
    perts: list[str] = list(meta.get("perturbations", []))
    pert_ids: dict[str, list[str]] = meta.get("perturbation_items", {})
    for name in names:
        for p in perts:
            rr = _robustness(recs, metric, name, p, pert_ids.get(p, []))
            if rr is not None:
                robustness.append(rr)
            p_ids = pert_ids.get(p, [])
            complete &= all((name, i, p, r) in recs for i in p_ids for r in range(repeats))

    return RunSummary(
        run_dir=str(run_dir),
        task=task.name,
        metric=task.metric.name,
        n_items=len(ids),
        baseline=base,
        complete=complete,
        systems=results,
        comparisons=comparisons,
        robustness=robustness,
        perturbations=perts,
        repeats=repeats,
        temperature=task.generation.temperature,
        created=str(meta.get("created", "")),
    )


def compare_systems(
    a_items: Mapping[str, Sequence[Mapping[str, Any]]],
    b_items: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: Metric,
    *,
    a: str,
    b: str,
    resamples: int = 10_000,
    confidence: float = 0.95,
) -> Comparison | None:
    """Paired comparison of two systems on the items both answered (scores averaged over repeats)."""
    common = [i for i in a_items if i in b_items]
    if not common:
        return None
    a_scores = [float(np.mean([float(r.get("score") or 0.0) for r in a_items[i]])) for i in common]
    b_scores = [float(np.mean([float(r.get("score") or 0.0) for r in b_items[i]])) for i in common]
    statistic = None
    if getattr(metric, "corpus_level", False):
        a_pred = [a_items[i][0].get("prediction") for i in common]
        b_pred = [b_items[i][0].get("prediction") for i in common]
        refs = [a_items[i][0].get("reference") for i in common]

        def statistic(idx: np.ndarray) -> tuple[float, float]:
            r = [refs[j] for j in idx]
            return (
                metric.aggregate([a_pred[j] for j in idx], r),
                metric.aggregate([b_pred[j] for j in idx], r),
            )

        resamples = min(resamples, 2000)  # each replicate recomputes the metric in Python
    return paired_comparison(
        a_scores,
        b_scores,
        a_name=a,
        b_name=b,
        metric=getattr(metric, "name", "metric"),
        statistic=statistic,
        resamples=resamples,
        confidence=confidence,
    )


def _robustness(
    recs: Mapping[RecordKey, dict[str, Any]],
    metric: Metric,
    system: str,
    pname: str,
    ids: Sequence[str],
) -> RobustnessResult | None:
    pairs = [
        (recs[(system, i, ORIGINAL, 0)], recs[(system, i, pname, 0)])
        for i in ids
        if (system, i, ORIGINAL, 0) in recs and (system, i, pname, 0) in recs
    ]
    if not pairs:
        return None
    try:
        p_obj = get_perturbation(pname)
        description, changes = p_obj.description, p_obj.changes_answer
    except CadreError:
        description, changes = pname, True
    orig = [o for o, _ in pairs]
    pert = [p for _, p in pairs]
    consistent = 0
    for o, p in pairs:
        if changes or _canonical(o.get("reference")) != _canonical(p.get("reference")):
            consistent += bool(o.get("correct")) == bool(p.get("correct"))
        else:
            consistent += _canonical(o.get("prediction")) == _canonical(p.get("prediction"))
    o_val, p_val = _metric_value(metric, orig), _metric_value(metric, pert)
    low = high = None
    if len(pairs) >= 2:
        boot = paired_bootstrap(
            [float(p.get("score") or 0.0) for p in pert],
            [float(o.get("score") or 0.0) for o in orig],
            resamples=2000,
        )
        low, high = boot.low, boot.high
    return RobustnessResult(
        system=system,
        perturbation=pname,
        description=description,
        n=len(pairs),
        original=o_val,
        perturbed=p_val,
        delta=p_val - o_val,
        delta_low=low,
        delta_high=high,
        consistency=consistent / len(pairs),
        flipped_to_wrong=sum(1 for o, p in pairs if o.get("correct") and not p.get("correct")),
        flipped_to_right=sum(1 for o, p in pairs if not o.get("correct") and p.get("correct")),
    )


def compare_run(
    run_dir: str | Path, a: str, b: str, *, resamples: int = 10_000, confidence: float = 0.95
) -> Comparison:
    """Paired comparison of systems ``a`` and ``b`` of a run, on the unperturbed items both answered."""
    meta = read_run(run_dir)
    task = parse_spec(TaskSpec, meta["task"], source=f"{run_dir}/{RUN_FILE}: task")
    names = [s["name"] for s in meta["systems"]]
    for n in (a, b):
        if n not in names:
            raise did_you_mean(n, names, kind="system")
    ids, repeats = list(meta["item_ids"]), int(meta.get("repeats", 1))
    recs = latest_records(read_run_records(run_dir))
    comp = compare_systems(
        _scores_by_item(recs, a, ORIGINAL, ids, repeats),
        _scores_by_item(recs, b, ORIGINAL, ids, repeats),
        task.build_metric(),
        a=a,
        b=b,
        resamples=resamples,
        confidence=confidence,
    )
    if comp is None:
        raise DataError(
            f"{a} and {b} have no answered items in common in {run_dir}; run the evaluation first"
        )
    return comp
