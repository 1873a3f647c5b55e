"""Reports of a run directory: Markdown, a self-contained HTML page, and lm-evaluation-harness results files.

The HTML page has no external assets (charts are inline base64 PNGs, styles inline), so it can be mailed or
attached to a ticket. It shows the paper's Table 1 for the task (system, metric, advantage over the baseline
with its confidence interval, cost per request, cost ratio, latency), the paired comparisons in plain words,
a quality-vs-cost chart with the Pareto frontier, latency distributions and the robustness table.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadre.evaluate.formatting import html_table, md_table, p_value, percent, png_base64, points, seconds, usd
from cadre.evaluate.projection import DeploymentSection, deployment_section
from cadre.evaluate.records import read_run
from cadre.evaluate.results import SUMMARY_FILE, RunSummary, SystemResult, read_summary
from cadre.evaluate.stats import Comparison

__all__ = [
    "ReportPaths",
    "lm_eval_results",
    "pareto_frontier",
    "render_html",
    "render_markdown",
    "write_report",
]


@dataclass(frozen=True)
class ReportPaths:
    summary: Path
    markdown: Path | None
    html: Path | None
    lm_eval: list[Path]


# ---------------------------------------------------------------------------------------------- tables


def cost_ratio(system: SystemResult, baseline: SystemResult) -> str:
    """How many times cheaper (or dearer) than the baseline, as the paper's "223x"."""
    a, b = system.cost.per_request, baseline.cost.per_request
    if system.name == baseline.name:
        return "1× (baseline)"
    if a is None or b is None or not a or not b:
        return "n/a"
    r = b / a
    return f"{r:.3g}× cheaper" if r >= 1 else f"{1 / r:.3g}× dearer"


def _comparison_for(summary: RunSummary, name: str) -> Comparison | None:
    return next((c for c in summary.comparisons if c.a == name), None)


def table1_rows(summary: RunSummary) -> list[dict[str, str]]:
    """The paper's Table 1 for this task: one row per system."""
    base = summary.systems.get(summary.baseline or "")
    rows = []
    for name, s in summary.systems.items():
        comp = _comparison_for(summary, name)
        metric = percent(s.metric)
        if s.repeats is not None:
            metric += f" ± {s.repeats.std * 100:.1f}"
        if name == summary.baseline:
            adv = "baseline"
        elif comp is not None:
            b = comp.bootstrap
            adv = f"{points(b.difference)} [{points(b.low)}, {points(b.high)}]"
        else:
            adv = "n/a"
        p = p_value(comp.mcnemar.p_value) if comp is not None and comp.mcnemar is not None else ""
        model = s.model or ""
        if s.adapter:
            model += f" + {Path(s.adapter).name}"
        rows.append(
            {
                "System": name,
                "Model": model,
                "Shots": str(s.shots),
                summary.metric: metric,
                "Advantage (pts, 95% CI)": adv,
                "McNemar p": p,
                "Cost / request": usd(s.cost.per_request),
                "Cost / 1k req": usd(s.cost.per_1000),
                "Cost ratio": cost_ratio(s, base) if base else "n/a",
                "Concurrency": _level(s.latency.concurrency),
                "Latency p50": seconds(s.latency.p50_s),
                "Latency p95": seconds(s.latency.p95_s),
                "p50 one at a time": seconds(s.latency_solo.p50_s) if s.latency_solo else "n/a",
                "Failures": f"{s.failures} ({s.failure_rate * 100:.1f}%)",
            }
        )
    return rows


def _level(concurrency: int | None) -> str:
    return "mixed" if concurrency is None else str(concurrency)


def robustness_rows(summary: RunSummary) -> list[dict[str, str]]:
    rows = []
    for r in summary.robustness:
        ci = f" [{points(r.delta_low)}, {points(r.delta_high)}]" if r.delta_low is not None else ""
        rows.append(
            {
                "System": r.system,
                "Perturbation": r.perturbation,
                "n": str(r.n),
                "Original": percent(r.original),
                "Perturbed": percent(r.perturbed),
                "Δ (pts, 95% CI)": points(r.delta) + ci,
                "Consistency": percent(r.consistency) + "%",
                "Right→wrong": str(r.flipped_to_wrong),
                "Wrong→right": str(r.flipped_to_right),
            }
        )
    return rows


def _md_table(rows: Sequence[dict[str, str]]) -> str:
    if not rows:
        return md_table([], [])
    cols = list(rows[0])
    return md_table(cols, [[row[c] for c in cols] for row in rows])


def _notes(summary: RunSummary) -> list[str]:
    notes = []
    if not summary.complete:
        notes.append(
            "The run is incomplete (interrupted or still running): figures cover the recorded items."
        )
    levels = {s.latency.concurrency for s in summary.systems.values() if s.latency.n}
    if levels - {1}:
        notes.append(
            "Latency p50/p95 are measured with the run's concurrency (requests in flight per system, column "
            "Concurrency), so they include waiting for a batch; 'p50 one at a time' is the same system "
            "answering alone (the first items again, one by one): the latency a lone user sees."
        )
    for s in summary.systems.values():
        if s.cost.seconds_per_request is not None:
            notes.append(
                f"Cost of {s.name}: price × busy wall time ÷ requests = "
                f"{s.cost.seconds_per_request:.3f} s of the machine per request "
                f"({1 / s.cost.seconds_per_request:.2f} requests/s at concurrency "
                f"{_level(s.cost.concurrency)})."
            )
        if s.cost.note:
            notes.append(f"Cost of {s.name}: {s.cost.note}.")
        if s.failures:
            notes.append(f"{s.name} failed on {s.failures} requests, e.g. {s.errors[0] if s.errors else ''}")
        if s.routes:
            shares = ", ".join(f"{k} {v}" for k, v in sorted(s.routes.items()))
            notes.append(f"{s.name} routed requests to: {shares}.")
        if s.step_accuracy:
            per_step = ", ".join(f"{k} {percent(v, unit='%')}" for k, v in s.step_accuracy.items())
            notes.append(f"{s.name} per step (share correct): {per_step}.")
    return notes


def render_markdown(summary: RunSummary) -> str:
    """The report as Markdown."""
    lines = [
        f"# Evaluation: {summary.task}",
        "",
        f"{summary.n_items} items, metric **{summary.metric}**, baseline **{summary.baseline}**, "
        f"temperature {summary.temperature:g}, {summary.repeats} run(s) per item. Created {summary.created}.",
        "",
        "## Systems (Table 1)",
        "",
        _md_table(table1_rows(summary)),
        "## Paired comparisons",
        "",
    ]
    lines += [f"- {c.verdict}" for c in summary.comparisons] or ["_one system only_"]
    lines += ["", "## Robustness", ""]
    lines.append(
        _md_table(robustness_rows(summary))
        if summary.robustness
        else "_No perturbations in this run; add some with `--perturb noop,typos,...` and re-run._\n"
    )
    if summary.robustness:
        lines.append(
            "Consistency: the same answer before and after the perturbation (the same correctness when the "
            "perturbation recomputes the answer). Δ is perturbed minus original on the same items."
        )
    lines += ["", _deployment(summary).markdown()]
    notes = _notes(summary)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _deployment(summary: RunSummary) -> DeploymentSection:
    """The run's measurements priced for a stated deployment (projected; see :mod:`.projection`)."""
    return deployment_section({summary.task: summary})


# ---------------------------------------------------------------------------------------------- charts


def pareto_frontier(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats on both cost (lower) and quality (higher), cheapest first."""
    ordered = sorted(points, key=lambda p: (p[1], -p[2]))
    frontier: list[str] = []
    best = -math.inf
    for name, _cost, quality in ordered:
        if quality > best:
            frontier.append(name)
            best = quality
    return frontier


def _charts(summary: RunSummary) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: dict[str, str] = {}
    names = list(summary.systems)
    colors = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}

    # difference vs the baseline with its CI (forest plot)
    if summary.comparisons:
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(summary.comparisons)))
        for i, c in enumerate(summary.comparisons):
            b = c.bootstrap
            ax.errorbar(
                b.difference * 100,
                i,
                xerr=[[(b.difference - b.low) * 100], [(b.high - b.difference) * 100]],
                fmt="o",
                color=colors[c.a],
                capsize=4,
            )
        ax.axvline(0, color="grey", lw=1, ls="--")
        ax.set_yticks(range(len(summary.comparisons)), [c.a for c in summary.comparisons])
        ax.set_xlabel(f"{summary.metric} difference vs {summary.baseline} (points, 95% CI)")
        ax.invert_yaxis()
        charts["difference"] = png_base64(fig)

    # quality vs cost, with the Pareto frontier
    pts = [
        (n, s.cost.per_1000, s.metric)
        for n, s in summary.systems.items()
        if s.cost.per_1000 is not None and s.cost.per_1000 > 0 and math.isfinite(s.metric)
    ]
    if pts:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        front = pareto_frontier(pts)
        for n, cost, q in pts:
            ax.scatter(
                cost, q * 100, s=70, color=colors[n], zorder=3, edgecolor="black" if n in front else "none"
            )
            ax.annotate(n, (cost, q * 100), textcoords="offset points", xytext=(6, 5), fontsize=9)
        fp = sorted((p for p in pts if p[0] in front), key=lambda p: p[1])
        if len(fp) > 1:
            ax.step([p[1] for p in fp], [p[2] * 100 for p in fp], where="post", color="black", lw=1, ls=":")
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.12)
        ax.set_xlabel("cost per 1,000 requests (USD, log scale)")
        ax.set_ylabel(f"{summary.metric} (%)")
        ax.set_title("Quality vs cost (outlined: Pareto frontier)")
        ax.grid(alpha=0.3)
        charts["pareto"] = png_base64(fig)

    # latency distributions
    lat = [(n, s.latency.values_s) for n, s in summary.systems.items() if s.latency.values_s]
    if lat:
        fig, ax = plt.subplots(figsize=(7, 0.8 + 0.6 * len(lat)))
        bp = ax.boxplot([v for _, v in lat], vert=False, patch_artist=True, showfliers=True)
        ax.set_yticks(range(1, len(lat) + 1), [n for n, _ in lat])
        for patch, (n, _) in zip(bp["boxes"], lat):
            patch.set_facecolor(colors[n])
            patch.set_alpha(0.6)
        levels = {s.latency.concurrency for s in summary.systems.values() if s.latency.values_s}
        at = f"{levels.pop()} in flight" if len(levels) == 1 else "the run's concurrency"
        ax.set_xlabel(f"latency per request (s), {at}")
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
        charts["latency"] = png_base64(fig)

    # robustness: metric per perturbation
    if summary.robustness:
        perts = list(dict.fromkeys(r.perturbation for r in summary.robustness))
        fig, ax = plt.subplots(figsize=(7, 3.8))
        width = 0.8 / max(1, len(names))
        for i, n in enumerate(names):
            vals = []
            for p in perts:
                r = next((x for x in summary.robustness if x.system == n and x.perturbation == p), None)
                vals.append(r.perturbed * 100 if r else math.nan)
            orig = summary.systems[n].metric * 100
            xs = [j + i * width for j in range(len(perts))]
            ax.bar(xs, vals, width=width, color=colors[n], label=n, alpha=0.85)
            ax.hlines(
                orig, xs[0] - width / 2, xs[-1] + width / 2, colors=[colors[n]], linestyles="dashed", lw=1
            )
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(perts))], perts, rotation=20)
        ax.set_ylabel(f"{summary.metric} (%)")
        ax.set_title("Under perturbation (dashed: unperturbed)")
        ax.legend(fontsize=8)
        charts["robustness"] = png_base64(fig)
    return charts


# ---------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;
color:#1d2329;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#555}table{border-collapse:collapse;width:100%;font-size:.86rem;margin:.6rem 0}
th,td{border:1px solid #d9dee3;padding:.35rem .5rem;text-align:right;white-space:nowrap}
th{background:#f2f5f8;white-space:normal}td:first-child,th:first-child,td.l{text-align:left}
td.l{white-space:normal;word-break:break-word;max-width:18rem}
tr.base td{background:#fafbfc;font-style:italic}.verdict{font-size:1rem;margin:.3rem 0}
.sig{font-weight:600}.neutral{color:#555}img{max-width:100%;height:auto}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1rem}
.note{color:#555;font-size:.9rem}.wrap{overflow-x:auto}
"""


_NO_PERTURB = (
    "<p class='note'>No perturbations in this run. Add some with <code>--perturb noop,typos,casing,names,numbers"
    "</code> and re-run the same command (answered items are kept).</p>"
)


def render_html(summary: RunSummary, *, charts: dict[str, str] | None = None) -> str:
    """The report as one self-contained HTML page."""
    charts = _charts(summary) if charts is None else charts
    verdicts = []
    for c in summary.comparisons:
        cls = "sig" if c.significant else "neutral"
        verdicts.append(f"<p class='verdict {cls}'>{html.escape(c.verdict)}</p>")

    def img(key: str, alt: str) -> str:
        if key not in charts:
            return ""
        return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{charts[key]}'></figure>"

    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _notes(summary))
    robust_expl = (
        "<p class='note'>Consistency: the same answer before and after the perturbation (the same correctness "
        "when the perturbation recomputes the answer). Δ is perturbed minus original on the same items, with a "
        "95% paired bootstrap interval.</p>"
        if summary.robustness
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cadre eval: {html.escape(summary.task)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>Evaluation: {html.escape(summary.task)}</h1>
<p class="meta">{summary.n_items} items · metric <b>{html.escape(summary.metric)}</b> · baseline
<b>{html.escape(summary.baseline or "")}</b> · temperature {summary.temperature:g} · {summary.repeats} run(s) per
item · created {html.escape(summary.created)}{"" if summary.complete else " · <b>incomplete run</b>"}</p>
<h2>Verdict</h2>
{"".join(verdicts) or "<p class='note'>One system only: nothing to compare.</p>"}
<h2>Systems (Table 1)</h2>
{html_table(table1_rows(summary), base=summary.baseline, left=2)}
<p class="note">Advantage: the system minus the baseline on the same items, in points, with a 95% paired
bootstrap interval; McNemar's test on the items one system got right and the other wrong. Cost per request:
the hardware's price per hour × the system's busy wall time ÷ its requests, at the run's concurrency (local),
or tokens × list prices (hosted).</p>
<div class="charts">{img("difference", "difference vs baseline")}{img("pareto", "quality vs cost")}
{img("latency", "latency distributions")}{img("robustness", "robustness")}</div>
<h2>Robustness</h2>
{html_table(robustness_rows(summary), left=2) if summary.robustness else _NO_PERTURB}
{robust_expl}
{_deployment(summary).html()}
{f"<h2>Notes</h2><ul class='note'>{notes}</ul>" if notes else ""}
</body></html>
"""


# ---------------------------------------------------------------------------------------------- lm-eval


def lm_eval_results(summary: RunSummary, meta: dict[str, Any], system: str) -> dict[str, Any]:
    """One system's results in lm-evaluation-harness's ``results.json`` shape (v0.4 keys)."""
    s = summary.systems[system]
    task = summary.task
    metric = {"accuracy": "acc", "macro_f1": "f1_macro"}.get(summary.metric, summary.metric)
    spec = next(x for x in meta["systems"] if x["name"] == system)
    gen = meta["task"]["generation"]
    res: dict[str, Any] = {"alias": task, f"{metric},none": s.metric}
    if summary.metric != "accuracy":
        res["acc,none"] = s.accuracy
    if s.repeats is not None:
        res[f"{metric}_stderr,none"] = s.repeats.std / math.sqrt(len(s.repeats.values))
    elif s.n and math.isfinite(s.accuracy) and summary.metric in ("accuracy", "exact_match"):
        res[f"{metric}_stderr,none"] = math.sqrt(max(s.metric * (1 - s.metric), 0.0) / max(s.n - 1, 1))
    else:
        res[f"{metric}_stderr,none"] = "N/A"
    model_args = ",".join(f"{k}={v}" for k, v in spec.items() if v not in (None, {}, []) and k != "name")
    return {
        "results": {task: res},
        "group_subtasks": {task: []},
        "configs": {
            task: {
                "task": task,
                "output_type": "generate_until",
                "num_fewshot": s.shots,
                "metric_list": [{"metric": metric, "aggregation": "mean", "higher_is_better": True}],
                "generation_kwargs": {
                    "max_gen_toks": gen["max_tokens"],
                    "temperature": gen["temperature"],
                    "until": gen["stop"],
                },
            }
        },
        "versions": {task: 1.0},
        "n-shot": {task: s.shots},
        "higher_is_better": {task: {metric: True}},
        "n-samples": {task: {"original": summary.n_items, "effective": s.n}},
        "config": {"model": "cadre", "model_args": model_args, "batch_size": 1, "limit": meta.get("limit")},
        "date": summary.created,
        "model_name": system,
        "cadre": {
            "cost_per_request_usd": s.cost.per_request,
            "latency_p50_s": s.latency.p50_s,
            "concurrency": s.latency.concurrency,
            "latency_p50_one_at_a_time_s": s.latency_solo.p50_s if s.latency_solo else None,
            "failure_rate": s.failure_rate,
        },
    }


def write_report(
    run_dir: str | Path,
    summary: RunSummary | None = None,
    *,
    html_page: bool = True,
    markdown: bool = True,
    lm_eval: bool = True,
) -> ReportPaths:
    """Write ``report.md``, ``report.html`` and ``lm_eval/<system>/results.json`` from the run's summary.

    The summary is rendered, not recomputed: ``summary`` when given, else the run's ``summary.json``
    (:func:`~cadre.evaluate.results.read_summary`; ``cadre eval report`` recomputes it from the records).
    """
    d = Path(run_dir)
    summary = read_summary(d) if summary is None else summary
    md_path = html_path = None
    if markdown:
        md_path = d / "report.md"
        md_path.write_text(render_markdown(summary), encoding="utf-8")
    if html_page:
        html_path = d / "report.html"
        html_path.write_text(render_html(summary), encoding="utf-8")
    lm_paths = []
    if lm_eval:
        from cadre.paths import safe_name

        meta = read_run(d)
        for name in summary.systems:
            p = d / "lm_eval" / safe_name(name, kind="system") / "results.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(
                json.dumps(lm_eval_results(summary, meta, name), indent=2, default=str), encoding="utf-8"
            )
            lm_paths.append(p)
    return ReportPaths(summary=d / SUMMARY_FILE, markdown=md_path, html=html_path, lm_eval=lm_paths)
