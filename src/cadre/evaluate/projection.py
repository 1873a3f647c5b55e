"""An evaluation at deployment scale: the measured token counts and quality priced with ``cadre cost plan``.

A run measures quality and tokens per request on this machine, where a 135M and a 270M model cost about the
same. The decision is made at volume, on other hardware: this prices each measured system for a stated
deployment (by default 1M requests/month, peak ×3, p95 ≤ 5 s) on an L4 and on a CPU server node, and the
generalist's requests also as a hosted API and as a 70B model on H100s. Everything here is *projected* by the
cost model; the report shows it next to the figures measured locally.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from cadre.config import StrictModel
from cadre.costmodel import CostPlan, Measured, PlanSpec, load_model, plan_costs
from cadre.errors import CadreError
from cadre.evaluate.formatting import finite, markdown_html_table, md_table, percent, usd_rounded
from cadre.evaluate.results import RunSummary, SystemResult

__all__ = ["Deployment", "DeploymentSection", "deployment_section", "measured_for_plan"]


class Deployment(StrictModel):
    """The deployment a report prices its measurements for (stated in the report)."""

    requests_per_month: float = Field(default=1_000_000, gt=0)
    peak_factor: float = Field(default=3.0, ge=1)
    p95_latency_s: float = Field(default=5.0, gt=0)
    utilization_ceiling: float = Field(default=0.7, gt=0, le=1)
    hardware: list[str] = Field(default_factory=lambda: ["l4", "cpu-epyc-32c"])
    """Where each measured local model is priced (rented)."""
    api: list[str] = Field(default_factory=lambda: ["gpt-4o-mini"])
    """Hosted APIs priced with the generalist's measured token counts (their quality is not measured)."""
    large_model: str | None = "llama-3-70b"
    large_model_hardware: str = "h100-sxm"
    large_model_precision: str = "fp8"


def measured_for_plan(summary: RunSummary) -> dict[str, Measured]:
    """Each system's mean prompt/completion tokens and share of fully correct answers, for ``cadre cost plan``."""
    out = {}
    for name, s in summary.systems.items():
        out[name] = Measured(
            input_tokens=finite(s.latency.prompt_tokens_mean) or None,
            output_tokens=finite(s.latency.completion_tokens_mean) or None,
            quality=finite(s.accuracy),
        )
    return out


def _costmodel_model(s: SystemResult) -> str | None:
    """The cost model's id of a local system's model, or None when the cost model cannot read it."""
    from cadre.runtime import costmodel_id, parse_model

    if s.kind != "model" or not s.model:
        return None
    ref = parse_model(s.model)
    for cand in (costmodel_id(ref.name), s.model):
        try:
            load_model(cand)
            return cand
        except CadreError:
            continue
    return None


def _generalist(summary: RunSummary) -> str | None:
    if "generalist" in summary.systems:
        return "generalist"
    return summary.baseline if summary.baseline in summary.systems else None


def _options(
    summary: RunSummary, d: Deployment, notes: list[str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The plan's options, and for each one priced from a measured system, that system's name."""
    measured = measured_for_plan(summary)
    opts: list[dict[str, Any]] = []
    origin: dict[str, str] = {}

    def sized(name: str) -> dict[str, Any]:
        m = measured[name]
        return {k: v for k, v in (("input_tokens", m.input_tokens), ("output_tokens", m.output_tokens)) if v}

    for name, s in summary.systems.items():
        tokens = sized(name)
        if "input_tokens" not in tokens or "output_tokens" not in tokens:
            notes.append(f"{name}: no token counts recorded")
            continue
        method = s.cost.method or ""
        if method.startswith("price:"):
            opts.append({"kind": "api", "name": name, "price": method[6:], **tokens})
            opts[-1]["quality"] = measured[name].quality
            origin[name] = name
            continue
        model = _costmodel_model(s)
        if model is None:
            notes.append(
                f"{name}: {'a routed system' if s.kind == 'routed' else 'model unknown to the cost model'}"
            )
            continue
        for hw in d.hardware:
            origin[f"{name} on {hw}"] = name
            opts.append(
                {
                    "kind": "self_hosted",
                    "name": f"{name} on {hw}",
                    "model": model,
                    "hardware": hw,
                    "quality": measured[name].quality,
                    **tokens,
                }
            )
    g = _generalist(summary)
    if g is not None and sized(g).keys() >= {"input_tokens", "output_tokens"}:
        for api in d.api:
            opts.append({"kind": "api", "name": f"{g} prompts on {api} API", "price": api, **sized(g)})
        if d.large_model:
            opts.append(
                {
                    "kind": "self_hosted",
                    "name": f"{g} prompts on {d.large_model} ({d.large_model_hardware})",
                    "model": d.large_model,
                    "hardware": d.large_model_hardware,
                    "precision": d.large_model_precision,
                    **sized(g),
                }
            )
    return opts, origin


@dataclass
class DeploymentSection:
    """The report section: what was assumed, and one row per option (projected) beside the local figures."""

    lines: list[str]
    head: list[str]
    rows: list[list[str]]
    plans: dict[str, CostPlan] = field(default_factory=dict)

    def markdown(self) -> str:
        body = "".join(f"{x}\n\n" for x in self.lines)
        return f"## At deployment scale (projected, not measured)\n\n{body}{md_table(self.head, self.rows)}"

    def html(self) -> str:
        paras = "".join(f"<p class='note'>{html.escape(x)}</p>" for x in self.lines)
        table = markdown_html_table(self.head, self.rows) if self.rows else ""
        return f"<h2>At deployment scale (projected, not measured)</h2>{paras}{table}"


def deployment_section(
    summaries: Mapping[str, RunSummary], deployment: Deployment | None = None
) -> DeploymentSection:
    """Price every task's measured systems for ``deployment`` (one plan per task); never raises on a bad run."""
    d = deployment or Deployment()
    lines = [
        f"Projected with `cadre cost plan` for a stated deployment: {d.requests_per_month:,.0f} requests/month, "
        f"peak hour ×{d.peak_factor:g} the mean, p95 ≤ {d.p95_latency_s:g} s, utilization ≤ "
        f"{d.utilization_ceiling:.0%}, hardware rented around the clock for the peak. Token counts and quality "
        "are this run's measurements; throughput is the cost model's (fitted engine factors where the hardware "
        "has published measurements, else the ideal roofline, a lower bound on cost). Hosted-API and 70B rows "
        "price the generalist's prompts; their quality was not measured here.",
    ]
    head = [
        "task",
        "option",
        "quality (measured)",
        "tokens in/out (measured)",
        "hardware (projected)",
        "$/month",
        "$/1k req",
        "$/1k correct",
        "$/1k req measured here",
    ]
    rows: list[list[str]] = []
    notes: list[str] = []
    plans: dict[str, CostPlan] = {}
    multi = len(summaries) > 1
    for task, summary in summaries.items():
        opts, origin = _options(summary, d, notes)
        if not opts:
            continue
        g = _generalist(summary) or next(iter(summary.systems))
        gm = measured_for_plan(summary)[g]
        workload = {
            "requests_per_month": d.requests_per_month,
            "input_tokens": gm.input_tokens or opts[0].get("input_tokens", 1),
            "output_tokens": gm.output_tokens or opts[0].get("output_tokens", 1),
            "peak_factor": d.peak_factor,
            "p95_latency_s": d.p95_latency_s,
            "utilization_ceiling": d.utilization_ceiling,
        }
        try:
            plan = plan_costs(PlanSpec.model_validate({"workload": workload, "options": opts}))
        except (CadreError, ValueError) as err:
            notes.append(f"{task}: {err}")
            continue
        plans[task] = plan
        for o in plan.options:
            local = summary.systems.get(origin.get(o.name, ""))
            here = usd_rounded(local.cost.per_1000) if local is not None else "-"
            rows.append(
                [
                    task if multi or not rows else "",
                    o.name,
                    percent(o.quality, unit="%") if o.quality is not None else "not measured",
                    f"{o.input_tokens:,.0f} / {o.output_tokens:,.0f}",
                    "API"
                    if o.kind == "api"
                    else f"{o.devices} device(s)" + (" ✗ p95" if o.meets_latency is False else ""),
                    usd_rounded(o.monthly_usd),
                    usd_rounded(o.usd_per_1k_requests),
                    usd_rounded(o.usd_per_1k_correct),
                    here,
                ]
            )
    if notes:
        lines.append("Not projected: " + "; ".join(notes) + ".")
    if not rows:
        lines.append(
            "_Nothing to project: no system with recorded token counts and a model the cost model knows._"
        )
    return DeploymentSection(lines, head, rows, plans)
