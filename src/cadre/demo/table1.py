"""The paper's Table 1 on this machine: per task, generalist vs specialist vs ecosystem, read from the runs'
summaries (:func:`cadre.evaluate.read_summary`); nothing is recomputed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.config import to_jsonable
from cadre.errors import DataError
from cadre.evaluate import RunSummary, finite, read_summary

__all__ = ["Table1Row", "read_json", "table1"]


@dataclass
class Table1Row:
    """One task: generalist vs specialist on the same test items (differences are specialist - generalist)."""

    task: str
    metric: str
    n: int
    generalist: float | None
    specialist: float | None
    ecosystem: float | None
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    significant: bool = False
    p_value: float | None = None
    verdict: str = ""
    generalist_cost_1k: float | None = None
    specialist_cost_1k: float | None = None
    ecosystem_cost_1k: float | None = None
    generalist_p50_s: float | None = None
    specialist_p50_s: float | None = None
    ecosystem_p50_s: float | None = None
    generalist_p50_solo_s: float | None = None  # one request at a time (the others: at the run's concurrency)
    specialist_p50_solo_s: float | None = None
    cost_ratio: float | None = None
    robustness: list[dict[str, Any]] = field(default_factory=list)
    remote: dict[str, float] = field(default_factory=dict)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _summary(run_dir: Path) -> RunSummary | None:
    try:
        return read_summary(run_dir)
    except DataError:
        return None


def _row(task: str, s: RunSummary) -> Table1Row:
    systems = s.systems

    def metric(name: str) -> float | None:
        return finite(systems[name].metric) if name in systems else None

    def cost_1k(name: str) -> float | None:
        return systems[name].cost.per_1000 if name in systems else None

    def p50(name: str) -> float | None:
        return systems[name].latency.p50_s if name in systems else None

    def p50_solo(name: str) -> float | None:
        solo = systems[name].latency_solo if name in systems else None
        return solo.p50_s if solo is not None else None

    row = Table1Row(
        task=task,
        metric=s.metric,
        n=s.n_items,
        generalist=metric("generalist"),
        specialist=metric("specialist"),
        ecosystem=metric("ecosystem"),
        generalist_cost_1k=cost_1k("generalist"),
        specialist_cost_1k=cost_1k("specialist"),
        ecosystem_cost_1k=cost_1k("ecosystem"),
        generalist_p50_s=p50("generalist"),
        specialist_p50_s=p50("specialist"),
        ecosystem_p50_s=p50("ecosystem"),
        generalist_p50_solo_s=p50_solo("generalist"),
        specialist_p50_solo_s=p50_solo("specialist"),
    )
    for name, res in systems.items():
        value = finite(res.metric)
        if name.startswith("remote") and value is not None:
            row.remote[name] = value
    for c in s.comparisons:
        if c.a == "specialist" and c.b == "generalist":
            boot = c.bootstrap
            row.difference, row.low, row.high = finite(boot.difference), finite(boot.low), finite(boot.high)
            row.significant = bool(
                row.low is not None and row.high is not None and (row.low > 0 or row.high < 0)
            )
            row.p_value = finite(c.mcnemar.p_value) if c.mcnemar is not None else None
            row.verdict = c.verdict
    if row.generalist_cost_1k and row.specialist_cost_1k:
        row.cost_ratio = row.generalist_cost_1k / row.specialist_cost_1k
    return row


def table1(out: Path, tasks: list[str]) -> list[Table1Row]:
    """Rows of Table 1 from ``out/eval/<task>/summary.json`` (tasks without a finished evaluation are left out)."""
    rows = []
    for task in tasks:
        s = _summary(out / "eval" / task)
        if s is None:
            continue
        row = _row(task, s)
        rob = _summary(out / "eval" / f"{task}-robustness")
        for rr in rob.robustness if rob is not None else []:
            row.robustness.append(to_jsonable(dataclasses.asdict(rr)))
        rows.append(row)
    return rows
