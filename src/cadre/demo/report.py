"""The demo report: the paper's Table 1 measured on this machine, with charts, routing and the cost audit.

Everything is read back from the step outputs (evaluation summaries, the router's held-out evaluation, the cost
model), so the report can be rebuilt at any time and never shows a number that was not measured or computed.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from cadre.demo.charts import confusion_chart, roofline_chart, roofline_text, scores_chart
from cadre.demo.composed import composed_section
from cadre.demo.deployment import deployment_table
from cadre.demo.render import DemoReport, render_html, render_markdown
from cadre.demo.steps import StepRunner
from cadre.demo.table1 import Table1Row, read_json, table1
from cadre.evaluate import percent, points, seconds_plain, usd_rounded

__all__ = ["Table1Row", "table1", "write_demo_report"]


def _pct(v: float | None) -> str:
    return percent(v, unit="%")


def _pp(v: float | None) -> str:
    return points(v, unit=" pp")


def _advantage(r: Table1Row) -> str:
    if r.difference is None:
        return "n/a"
    ci = f"[{100 * (r.low or 0):+.1f}, {100 * (r.high or 0):+.1f}]"
    return f"{_pp(r.difference)} (95% CI {ci})"


def _verdicts(rows: list[Table1Row], tasks: list[str], fast: bool) -> list[str]:
    lines = []
    for task in tasks:
        r = next((x for x in rows if x.task == task), None)
        if r is None:
            lines.append(f"**{task}**: not evaluated (see the step log below).")
        elif r.specialist is None:
            lines.append(f"**{task}**: no specialist was trained, so there is nothing to compare.")
        elif r.significant and (r.difference or 0) > 0:
            lines.append(
                f"**{task}**: the specialist beats the generalist by {_pp(r.difference)}; the 95% confidence "
                f"interval [{_pp(r.low)}, {_pp(r.high)}] excludes zero (n = {r.n})."
            )
        elif r.significant:
            lines.append(
                f"**{task}**: the specialist is *worse* than the generalist by {100 * abs(r.difference or 0):.1f} pp "
                f"(95% CI [{_pp(r.low)}, {_pp(r.high)}], n = {r.n})."
            )
        else:
            lines.append(
                f"**{task}**: not shown — the specialist's advantage {_pp(r.difference)} has a 95% CI "
                f"[{_pp(r.low)}, {_pp(r.high)}] that includes zero (n = {r.n}); more test items or more training "
                "would be needed to tell."
            )
    if fast:
        lines.append(
            "_This is the `--fast` run (tiny splits, seconds of training): a smoke test of the pipeline, not "
            "evidence. Run `cadre demo` without `--fast` for the measured comparison._"
        )
    return lines


_SELECTION_WORDS = {
    "fixed": "the same first",
    "random": "randomly drawn",
    "nearest": "nearest-neighbour",
}


def write_demo_report(
    r: StepRunner, *, generalist: str, generalist_why: str, price_per_hour: float
) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``table1.json`` and the charts into the demo folder."""
    cfg, out = r.cfg, r.out
    rows = table1(out, cfg.tasks)
    router_eval = read_json(out / "router" / "demo_eval.json")
    images: dict[str, Path] = {}
    notes: list[str] = []
    for key, fn in (
        ("scores", lambda: scores_chart(rows, out / "scores.png")),
        ("confusion", lambda: confusion_chart(router_eval, out / "routing_confusion.png")),
    ):
        try:
            p = fn()
            if p is not None:
                images[key] = p
        except Exception as err:  # a chart failing must not lose the report
            notes.append(f"{key} chart not drawn: {err}")

    g_catalog = {"gemma3-270m": ("gemma-3-270m", "q4_k_m"), "smollm2-135m": ("smollm2-135m", "q4_1")}
    placed = [("specialist: SmolLM2-135M + LoRA", "smollm2-135m", "q4_1")]
    if generalist in g_catalog:
        placed.append((f"generalist: {generalist}", *g_catalog[generalist]))
    try:
        hw_name = str(out / "hardware.yaml") if (out / "hardware.yaml").is_file() else cfg.hardware
        roof_path, roof_facts, roof_note = roofline_chart(
            hw_name, price_per_hour, placed, out / "roofline.png"
        )
    except Exception as err:
        roof_path, roof_facts, roof_note = None, [], f"roofline not drawn: {err}"
    if roof_path is not None:
        images["roofline"] = roof_path

    sizes = cfg.sizes
    intro = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} "
        f"({_cpu_count()} CPU threads visible), {'fast' if cfg.fast else 'full'} run, seed {cfg.seed}. "
        f"Specialists: {cfg.base} + one LoRA adapter per task, trained for {cfg.train_budget} each on "
        f"{sizes.train} generated examples. Generalist: {generalist} ({generalist_why}), {cfg.shots}-shot with "
        f"{_SELECTION_WORDS[cfg.few_shot_selection]} exemplars from the training split. Test: "
        f"{sizes.test} held-out items per task, greedy decoding.",
        f"Cost per request = this machine's price ({usd_rounded(price_per_hour)}/hour, "
        + (
            "set with `--price-per-hour`"
            if cfg.price_per_hour is not None
            else f"cadre.costmodel's figure for `{cfg.hardware}` hardware; change it with `--price-per-hour`"
        )
        + f") × the system's busy wall time ÷ the requests it answered, with {cfg.concurrency} requests in "
        "flight per system (the runtime batches them; cadre.costmodel `cost_per_request`). Latency is the "
        f"median end-to-end time per request at that load, and one request at a time (the first "
        f"{cfg.latency_probe} items answered again alone), on a CPU that may be shared.",
    ]
    head = [
        "task",
        "metric",
        "n",
        "generalist",
        "specialist",
        "advantage (95% CI)",
        "McNemar p",
        "cost / 1k req (gen → spec)",
        f"latency p50 at {cfg.concurrency} in flight (gen → spec)",
        "latency p50 one at a time (gen → spec)",
        "cost ratio",
    ]
    table = []
    for row in rows:
        table.append(
            [
                row.task,
                row.metric,
                str(row.n),
                _pct(row.generalist),
                _pct(row.specialist),
                _advantage(row),
                "n/a" if row.p_value is None else f"{row.p_value:.2g}",
                f"{usd_rounded(row.generalist_cost_1k)} → {usd_rounded(row.specialist_cost_1k)}",
                f"{seconds_plain(row.generalist_p50_s)} → {seconds_plain(row.specialist_p50_s)}",
                f"{seconds_plain(row.generalist_p50_solo_s)} → {seconds_plain(row.specialist_p50_solo_s)}",
                "n/a" if row.cost_ratio is None else f"{row.cost_ratio:.1f}×",
            ]
        )
    eco_lines = _ecosystem_lines(rows, router_eval)
    rob_head = ["task", "system", "perturbation", "n", "original", "perturbed", "Δ (95% CI)", "consistency"]
    rob = []
    for row in rows:
        for rr in row.robustness:
            lo, hi = rr.get("delta_low"), rr.get("delta_high")
            ci = "" if lo is None or hi is None else f" [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            rob.append(
                [
                    row.task,
                    str(rr.get("system")),
                    str(rr.get("perturbation")),
                    str(rr.get("n")),
                    _pct(rr.get("original")),
                    _pct(rr.get("perturbed")),
                    f"{_pp(rr.get('delta'))}{ci}",
                    _pct(rr.get("consistency")),
                ]
            )
    routing = _routing_lines(router_eval)
    roofline = [roofline_text(roof_facts)]
    if roof_note:
        roofline.append(f"_{roof_note}_")
    roof_rows = []
    for f_ in roof_facts:
        if "error" in f_:
            roof_rows.append([f_["model"], f_["label"], "", f"not placed: {f_['error']}", ""])
        else:
            roof_rows.append(
                [
                    f_["model"],
                    f_["label"],
                    f_["precision"],
                    f"{f_['seconds_per_token'] * 1000:.2f} ms",
                    f"{f_['arithmetic_intensity']:.2f}",
                ]
            )
    audit_lines, audit_rows = _audit()
    serve = (
        []
        if not (out / "ecosystem.yaml").is_file()
        else [
            f"`{out / 'ecosystem.yaml'}` holds the three specialists, the router and the generalist. Serve it:",
            f"```\ncadre serve {out / 'ecosystem.yaml'} --port 8000\n```",
            'and call it with the official client (`model="auto"` lets the router choose):',
            '```python\nfrom openai import OpenAI\nclient = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")\n'
            'print(client.chat.completions.create(model="auto", messages=[{"role": "user", "content": '
            '"Where is my order #48213?"}]).choices[0].message.content)\n```',
        ]
    )
    steps = [[k, v.status, f"{v.seconds:.1f}", v.note] for k, v in r.manifest.steps.items()]
    steps += [["report", "note", "", n] for n in notes]
    rep = DemoReport(
        title="cadre demo: specialists vs a generalist, measured on this machine",
        intro=intro,
        verdicts=_verdicts(rows, cfg.tasks, cfg.fast),
        table=table,
        table_head=head,
        ecosystem=eco_lines,
        robustness_head=rob_head,
        robustness=rob,
        routing=routing,
        roofline=roofline,
        roofline_rows=roof_rows,
        audit_lines=audit_lines,
        audit_rows=audit_rows,
        steps=steps,
        images=images,
        serve=serve,
        deployment=deployment_table(out, cfg.tasks),
        composed=composed_section(out),
    )
    md, page = out / "report.md", out / "report.html"
    md.write_text(render_markdown(rep), encoding="utf-8")
    page.write_text(render_html(rep), encoding="utf-8")
    table_json = [vars(x) for x in rows]
    (out / "table1.json").write_text(json.dumps(table_json, indent=2, default=str) + "\n", encoding="utf-8")
    return {"md": md, "html": page, "table": table_json}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _ecosystem_lines(rows: list[Table1Row], router_eval: dict[str, Any] | None) -> list[str]:
    have = [r for r in rows if r.ecosystem is not None]
    if not have:
        return ["The routed ecosystem was not evaluated (no router, or no finished evaluation)."]
    n = sum(r.n for r in have)
    eco = sum((r.ecosystem or 0) * r.n for r in have) / n
    gen = sum((r.generalist or 0) * r.n for r in have) / n
    spec = [r for r in have if r.specialist is not None]
    lines = [
        f"On the mixed stream of all {n} in-scope test requests, routed by the router (each answered by the "
        f"specialist it chose, or by the generalist): **{_pct(eco)}** (item-weighted over tasks), against "
        f"{_pct(gen)} for the generalist answering everything.",
    ]
    if spec:
        oracle = sum((r.specialist or 0) * r.n for r in spec) / sum(r.n for r in spec)
        lines.append(f"With perfect routing (each request to its own specialist) it would be {_pct(oracle)}.")
    for r in have:
        lines.append(
            f"{r.task}: ecosystem {_pct(r.ecosystem)}, cost {usd_rounded(r.ecosystem_cost_1k)}/1k requests, "
            f"latency p50 {seconds_plain(r.ecosystem_p50_s)} (router time included)."
        )
    if router_eval and router_eval.get("abstention_recall") is not None:
        lines.append(
            f"Out-of-scope requests sent to the generalist: {_pct(router_eval['abstention_recall'])} of "
            f"{router_eval.get('n_out_of_scope')} held-out ones (they have no reference answer, so they are "
            "scored on routing only)."
        )
    return lines


def _routing_lines(ev: dict[str, Any] | None) -> list[str]:
    if not ev:
        return ["The router was not fitted (see the steps below)."]
    auroc = ev.get("ood_auroc")
    lines = [
        f"Held-out requests: {ev.get('n')} ({ev.get('n_out_of_scope')} out of scope). Routing accuracy "
        f"{_pct(ev.get('accuracy'))}; in-scope domain accuracy {_pct(ev.get('domain_accuracy'))}; out-of-domain "
        f"AUROC {'n/a' if auroc is None else f'{auroc:.3f}'}; share sent to the generalist "
        f"{_pct(ev.get('generalist_share'))}.",
        f"Routing overhead per request (embedding included): p50 {ev.get('p50_ms', 0):.1f} ms, "
        f"p99 {ev.get('p99_ms', 0):.1f} ms.",
    ]
    for e in (ev.get("errors") or [])[:3]:
        lines.append(
            f'misrouted: "{" ".join(str(e.get("text", "")).split())[:90]}" → {e.get("routed", e.get("predicted"))} '
            f"(true: {e.get('truth', '?')})"
        )
    return lines


def _audit() -> tuple[list[str], list[list[str]]]:
    try:
        from cadre.costmodel import audit, audit_summary
    except ImportError as err:
        return [f"_The cost-model audit is not available in this build ({err})._"], []
    try:
        claims = audit()
    except Exception as err:
        return [f"_The audit failed: {err}_"], []
    s = audit_summary(claims)
    lines = [
        f"cadre.costmodel recomputes the paper's quantitative claims from first principles: **{s['holds']} hold**, "
        f"**{s['fails']} do not**, {s['reported']} are reported without a paper value to compare "
        "(`cadre cost audit` prints all of them). The ones that do not hold:"
    ]
    rows = []
    for c in claims:
        if c.holds is False:
            paper = "n/a" if c.paper_value is None else f"{c.paper_value:.4g} {c.unit}"
            rows.append([c.id, c.claim, paper, f"{c.computed_value:.4g} {c.unit}", c.note])
    return lines, rows
