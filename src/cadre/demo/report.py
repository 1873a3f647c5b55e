"""The demo report: the paper's Table 1 measured on this machine, with charts, routing and the cost audit.

Everything is read back from the step outputs (evaluation summaries, the router's held-out evaluation, the cost
model), so the report can be rebuilt at any time and never shows a number that was not measured or computed.
"""

from __future__ import annotations

import base64
import html
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadre.demo.pipeline import _Runner

__all__ = ["Table1Row", "table1", "write_demo_report"]


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
    cost_ratio: float | None = None
    robustness: list[dict[str, Any]] = field(default_factory=list)
    remote: dict[str, float] = field(default_factory=dict)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def table1(out: Path, tasks: list[str]) -> list[Table1Row]:
    """Rows of Table 1 from ``out/eval/<task>/summary.json`` (tasks without a finished evaluation are left out)."""
    rows = []
    for task in tasks:
        s = _read(out / "eval" / task / "summary.json")
        if s is None:
            continue
        systems = s.get("systems", {})

        def metric(name: str, systems: dict[str, Any] = systems) -> float | None:
            v = _get(systems, name, "metric")
            return float(v) if isinstance(v, int | float) else None

        row = Table1Row(
            task=task,
            metric=str(s.get("metric", "")),
            n=int(s.get("n_items", 0)),
            generalist=metric("generalist"),
            specialist=metric("specialist"),
            ecosystem=metric("ecosystem"),
            generalist_cost_1k=_get(systems, "generalist", "cost", "per_1000"),
            specialist_cost_1k=_get(systems, "specialist", "cost", "per_1000"),
            ecosystem_cost_1k=_get(systems, "ecosystem", "cost", "per_1000"),
            generalist_p50_s=_get(systems, "generalist", "latency", "p50_s"),
            specialist_p50_s=_get(systems, "specialist", "latency", "p50_s"),
            ecosystem_p50_s=_get(systems, "ecosystem", "latency", "p50_s"),
        )
        for name, res in systems.items():
            if name.startswith("remote") and isinstance(res.get("metric"), int | float):
                row.remote[name] = float(res["metric"])
        for c in s.get("comparisons", []):
            if c.get("a") == "specialist" and c.get("b") == "generalist":
                boot = c.get("bootstrap", {})
                row.difference, row.low, row.high = boot.get("difference"), boot.get("low"), boot.get("high")
                row.significant = bool(
                    row.low is not None and row.high is not None and (row.low > 0 or row.high < 0)
                )
                row.p_value = _get(c, "mcnemar", "p_value")
                row.verdict = str(c.get("verdict", ""))
        if row.generalist_cost_1k and row.specialist_cost_1k:
            row.cost_ratio = row.generalist_cost_1k / row.specialist_cost_1k
        rob = _read(out / "eval" / f"{task}-robustness" / "summary.json")
        for rr in (rob or {}).get("robustness", []):
            row.robustness.append(rr)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------- charts


def _scores_chart(rows: list[Table1Row], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.8), dpi=110)
    x = np.arange(len(rows))
    series = [("generalist", "#9aa5b1"), ("specialist", "#2f7ed8"), ("ecosystem", "#55a868")]
    for i, (name, colour) in enumerate(series):
        vals = [getattr(r, name) for r in rows]
        ax.bar(
            x + (i - 1) * 0.26,
            [100 * v if v is not None else 0 for v in vals],
            0.26,
            label=name,
            color=colour,
        )
    for j, r in enumerate(rows):
        if r.specialist is not None and r.low is not None and r.high is not None and r.generalist is not None:
            # the specialist's CI, shifted to its bar: generalist + [low, high] of the paired difference
            lo, hi = 100 * (r.generalist + r.low), 100 * (r.generalist + r.high)
            ax.errorbar(
                j,
                100 * r.specialist,
                yerr=[[100 * r.specialist - lo], [hi - 100 * r.specialist]],
                fmt="none",
                ecolor="black",
                capsize=4,
                lw=1,
            )
    ax.set_xticks(x, [f"{r.task}\n({r.metric})" for r in rows])
    ax.set_ylabel("score on the test split (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks([0, 20, 40, 60, 80, 100])
    ax.legend(loc="upper center", ncols=3, fontsize=9, frameon=False)
    ax.set_title(
        "Generalist (few-shot) vs specialist (LoRA) vs routed ecosystem; bars: 95% CI of the advantage"
    )
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _confusion_chart(router_eval: dict[str, Any] | None, path: Path) -> Path | None:
    conf = (router_eval or {}).get("confusion") or {}
    labels, matrix = conf.get("labels"), conf.get("matrix")
    if not labels or not matrix:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=110)
    ax.imshow(m, cmap="Blues")
    names = [str(x) for x in labels]
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("routed to")
    ax.set_ylabel("true route")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                f"{int(m[i, j])}",
                ha="center",
                va="center",
                color="white" if m[i, j] > m.max() / 2 else "black",
            )
    ax.set_title("Routing on held-out requests")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _roofline(
    hardware: str, price: float, models: list[tuple[str, str, str]], path: Path
) -> tuple[Path | None, list[dict[str, Any]], str]:
    """Roofline of ``hardware`` with each (label, catalog model, precision) placed; plus a per-model table."""
    try:
        from cadre.costmodel import decode_step, load_hardware, load_model, plot_roofline, roofline_workload
    except ImportError as err:
        return None, [], f"cadre.costmodel unavailable ({err})"
    hw = load_hardware(hardware, price_per_hour=price)
    workloads, facts = [], []
    for label, name, precision in models:
        try:
            arch = load_model(name)
            workloads.append(
                roofline_workload(arch, hw, precision=precision, batches=(1, 8, 64), context=512, label=label)
            )
            d = decode_step(arch, hw, precision=precision, batch=1, context=512)
            facts.append(
                {
                    "label": label,
                    "model": name,
                    "precision": precision,
                    "seconds_per_token": d.seconds_per_token,
                    "arithmetic_intensity": d.arithmetic_intensity,
                }
            )
        except Exception as err:  # a model the catalog does not know: leave it off the chart, say so
            facts.append({"label": label, "model": name, "error": str(err)})
    if not workloads:
        return None, facts, "no model could be placed"
    plot_roofline(hw, workloads, path, title=f"Decode on {hw.display_name}")
    for f_ in facts:
        f_["ridge"] = hw.ridge_point("bf16")
    return path, facts, ""


def _roofline_text(facts: list[dict[str, Any]]) -> str:
    """What the chart shows, worded from the numbers (a CPU with low FLOP/s can make decode compute-bound)."""
    placed = [f for f in facts if "error" not in f]
    if not placed:
        return "No model could be placed on the roofline."
    ridge = placed[0]["ridge"]
    bound = [
        f"{f['model']} at {f['arithmetic_intensity']:.2f} FLOP/byte is "
        + ("memory-bound" if f["arithmetic_intensity"] < ridge else "compute-bound")
        for f in placed
    ]
    text = (
        "Each model's decode step placed on this machine's roofline by cadre.costmodel (batch 1, 8, 64; context "
        f"512). The ridge point is {ridge:.2f} FLOP/byte; at batch 1, " + "; ".join(bound) + "."
    )
    if len(placed) > 1:
        a, b = placed[0], placed[1]
        text += (
            f" The model predicts {a['seconds_per_token'] * 1000:.1f} ms per token for {a['model']} and "
            f"{b['seconds_per_token'] * 1000:.1f} ms for {b['model']} "
            f"({b['seconds_per_token'] / a['seconds_per_token']:.1f}× slower): per-token cost follows the bytes "
            "moved and FLOPs done, both of which grow with parameter count."
        )
    return text


# ------------------------------------------------------------------------------------------------- text


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _pp(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f} pp"


def _usd(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"${v:.4f}" if v < 1 else f"${v:.2f}"


def _sec(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


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


@dataclass
class _Report:
    title: str
    intro: list[str]
    verdicts: list[str]
    table: list[list[str]]
    table_head: list[str]
    ecosystem: list[str]
    robustness_head: list[str]
    robustness: list[list[str]]
    routing: list[str]
    roofline: list[str]
    roofline_rows: list[list[str]]
    audit_lines: list[str]
    audit_rows: list[list[str]]
    steps: list[list[str]]
    images: dict[str, Path]
    serve: list[str]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "_(none)_\n"
    out = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    return out + "".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |\n" for row in rows)


def _render_md(rep: _Report) -> str:
    parts = [f"# {rep.title}\n", *[line + "\n" for line in rep.intro], "\n## Verdict\n"]
    parts += [f"- {v}\n" for v in rep.verdicts]
    parts += ["\n## Table 1 on this machine\n\n", _md_table(rep.table_head, rep.table)]
    if "scores" in rep.images:
        parts.append(f"\n![scores]({rep.images['scores'].name})\n")
    parts += ["\n## The routed ecosystem\n\n", *[f"- {x}\n" for x in rep.ecosystem]]
    parts += [
        "\n## Robustness (answers that should not change)\n\n",
        _md_table(rep.robustness_head, rep.robustness),
    ]
    parts += ["\n## Routing\n\n", *[f"- {x}\n" for x in rep.routing]]
    if "confusion" in rep.images:
        parts.append(f"\n![routing confusion matrix]({rep.images['confusion'].name})\n")
    parts += ["\n## Where the models sit on the roofline\n\n", *[f"{x}\n" for x in rep.roofline], "\n"]
    parts.append(
        _md_table(["model", "role", "precision", "decode s/token (model)", "FLOP/byte"], rep.roofline_rows)
    )
    if "roofline" in rep.images:
        parts.append(f"\n![roofline]({rep.images['roofline'].name})\n")
    parts += ["\n## Audit of the paper's numbers\n\n", *[f"{x}\n" for x in rep.audit_lines], "\n"]
    parts.append(_md_table(["claim", "what", "paper", "recomputed", "note"], rep.audit_rows))
    serve = rep.serve or ["_No ecosystem was written (see the steps below)._"]
    parts += ["\n## Serve it\n\n", *[f"{x}\n" for x in serve]]
    parts += ["\n## Steps\n\n", _md_table(["step", "status", "seconds", "note"], rep.steps)]
    return "".join(parts)


_SELECTION_WORDS = {
    "fixed": "the same first",
    "random": "randomly drawn",
    "nearest": "nearest-neighbour",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1f2933;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #e4e7eb;
padding-bottom:.2em} table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #d9dee3;padding:.3em .55em;text-align:left;vertical-align:top} th{background:#f3f5f7}
td.num{text-align:right;font-variant-numeric:tabular-nums} .good{color:#1a7f37;font-weight:600}
.bad{color:#b42318;font-weight:600} .meh{color:#9a6700;font-weight:600} img{max-width:100%;height:auto}
.muted{color:#616e7c;font-size:.9em} pre{background:#f3f5f7;padding:.7em;overflow-x:auto;font-size:.85em}
ul.verdict li{margin:.3em 0}
"""


def _inline_md(text: str) -> str:
    """Escape, then render the two inline forms the report uses (**bold**, _italic_, `code`)."""
    import re

    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    s = re.sub(r"(?<![\w])_(.+?)_(?![\w])", r"<i>\1</i>", s)
    s = re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)
    return s


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p class=muted>(none)</p>"
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = []
        for c in row:
            cls = ""
            if len(c) <= 40 and (c.startswith(("+", "-", "$", "n/a")) or c[:1].isdigit()):
                cls = " class=num"
            cells.append(f"<td{cls}>{_inline_md(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _img(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _render_html(rep: _Report) -> str:
    verdict_items = []
    for v in rep.verdicts:
        cls = "good" if "beats" in v else "bad" if "worse" in v else "meh" if "not shown" in v else ""
        verdict_items.append(
            f"<li class={cls or 'plain'}>{_inline_md(v)}</li>" if cls else f"<li>{_inline_md(v)}</li>"
        )
    parts = [
        "<!doctype html><html><head><meta charset=utf-8>",
        f"<title>{html.escape(rep.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(rep.title)}</h1>",
        *[f"<p class=muted>{_inline_md(x)}</p>" for x in rep.intro],
        "<h2>Verdict</h2><ul class=verdict>",
        *verdict_items,
        "</ul><h2>Table 1 on this machine</h2>",
        _html_table(rep.table_head, rep.table),
        _img(rep.images.get("scores"), "scores"),
        "<h2>The routed ecosystem</h2><ul>",
        *[f"<li>{_inline_md(x)}</li>" for x in rep.ecosystem],
        "</ul><h2>Robustness (answers that should not change)</h2>",
        _html_table(rep.robustness_head, rep.robustness),
        "<h2>Routing</h2><ul>",
        *[f"<li>{_inline_md(x)}</li>" for x in rep.routing],
        "</ul>",
        _img(rep.images.get("confusion"), "routing confusion matrix"),
        "<h2>Where the models sit on the roofline</h2>",
        *[f"<p>{_inline_md(x)}</p>" for x in rep.roofline],
        _html_table(["model", "role", "precision", "decode s/token (model)", "FLOP/byte"], rep.roofline_rows),
        _img(rep.images.get("roofline"), "roofline"),
        "<h2>Audit of the paper's numbers</h2>",
        *[f"<p>{_inline_md(x)}</p>" for x in rep.audit_lines],
        _html_table(["claim", "what", "paper", "recomputed", "note"], rep.audit_rows),
        "<h2>Serve it</h2>",
        *[
            f"<pre>{html.escape(x.strip('`').removeprefix('python').strip())}</pre>"
            if x.startswith("```")
            else f"<p>{_inline_md(x)}</p>"
            for x in (rep.serve or ["_No ecosystem was written (see the steps below)._"])
        ],
        "<h2>Steps</h2>",
        _html_table(["step", "status", "seconds", "note"], rep.steps),
        "</body></html>",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------- assemble


def write_demo_report(
    r: _Runner, *, generalist: str, generalist_why: str, price_per_hour: float
) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``table1.json`` and the charts into the demo folder."""
    cfg, out = r.cfg, r.out
    rows = table1(out, cfg.tasks)
    router_eval = _read(out / "router" / "demo_eval.json")
    images: dict[str, Path] = {}
    notes: list[str] = []
    for key, fn in (
        ("scores", lambda: _scores_chart(rows, out / "scores.png")),
        ("confusion", lambda: _confusion_chart(router_eval, out / "routing_confusion.png")),
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
        roof_path, roof_facts, roof_note = _roofline(hw_name, price_per_hour, placed, out / "roofline.png")
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
        f"Cost per request = this machine's price ({_usd(price_per_hour)}/hour, "
        + (
            "set with `--price-per-hour`"
            if cfg.price_per_hour is not None
            else f"cadre.costmodel's figure for `{cfg.hardware}` hardware; change it with `--price-per-hour`"
        )
        + ") "
        "× measured latency, one request at a time (cadre.costmodel `cost_per_request`). Latency is the median "
        "end-to-end time per request on a CPU that may be shared.",
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
        "latency p50 (gen → spec)",
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
                f"{_usd(row.generalist_cost_1k)} → {_usd(row.specialist_cost_1k)}",
                f"{_sec(row.generalist_p50_s)} → {_sec(row.specialist_p50_s)}",
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
    roofline = [_roofline_text(roof_facts)]
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
    rep = _Report(
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
    )
    md, page = out / "report.md", out / "report.html"
    md.write_text(_render_md(rep), encoding="utf-8")
    page.write_text(_render_html(rep), encoding="utf-8")
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
            f"{r.task}: ecosystem {_pct(r.ecosystem)}, cost {_usd(r.ecosystem_cost_1k)}/1k requests, "
            f"latency p50 {_sec(r.ecosystem_p50_s)} (router time included)."
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
        from cadre.costmodel.paper_audit import audit, audit_summary
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
