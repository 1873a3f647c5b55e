"""Charts: the roofline with workloads placed on it (PNG and self-contained HTML), and the compare chart.

matplotlib is imported inside the functions (Agg backend), so importing cadre stays fast.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.costmodel.arch import ModelArch
from cadre.costmodel.hardware import Hardware
from cadre.costmodel.quant import compute_precision
from cadre.costmodel.roofline import decode_step
from cadre.errors import ConfigError

__all__ = [
    "RooflinePoint",
    "RooflineWorkload",
    "plot_compare",
    "plot_plan",
    "plot_roofline",
    "roofline_workload",
]


@dataclass(frozen=True)
class RooflinePoint:
    batch: int
    arithmetic_intensity: float  # FLOP/byte
    attained_flops: float  # FLOP/s the step achieves (FLOPs ÷ step time)
    seconds_per_token: float


@dataclass
class RooflineWorkload:
    """One model's decode on the roofline: a point per batch size (the trace shows batching's effect)."""

    label: str
    points: list[RooflinePoint] = field(default_factory=list)
    context: int | None = None


def roofline_workload(
    model: ModelArch,
    hardware: Hardware,
    *,
    precision: str | None = None,
    batches: Sequence[int] = (1, 8, 64, 512),
    context: int = 1024,
    tp: int = 1,
    label: str | None = None,
) -> RooflineWorkload:
    """Place ``model``'s decode step at each batch on ``hardware``'s roofline (batches that do not fit are skipped)."""
    from cadre.errors import CapacityError

    wl = RooflineWorkload(label or model.name, context=context)
    for b in batches:
        try:
            d = decode_step(model, hardware, precision=precision, batch=b, context=context, tp=tp)
        except CapacityError:
            continue
        wl.points.append(
            RooflinePoint(b, d.arithmetic_intensity, d.flops / d.seconds_per_token / tp, d.seconds_per_token)
        )
    if not wl.points:
        raise CapacityError(
            f"batch: {model.name} does not fit on {tp} x {hardware.name} at any batch in {list(batches)} "
            f"(context {context}); raise --tp or lower --context"
        )
    return wl


def _fmt_flops(v: float) -> str:
    for unit, scale in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} FLOP/s"


def plot_roofline(
    hardware: Hardware,
    workloads: Sequence[RooflineWorkload],
    path: str | Path,
    *,
    precision: str = "bf16",
    title: str | None = None,
) -> Path:
    """Draw the roofline of ``hardware`` with ``workloads`` on it; ``.png``/``.svg`` via matplotlib, ``.html``
    as a self-contained page (inline SVG + a table). Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg", ".html", ".htm"):
        raise ConfigError(f"plot: unsupported file type {out.suffix!r}; use .png, .svg or .html")
    cprec = compute_precision(precision)
    peak, bw = hardware.flops(cprec), hardware.bandwidth()
    ridge = peak / bw
    xs = [p.arithmetic_intensity for w in workloads for p in w.points] + [ridge]
    x_lo, x_hi = min(0.5, min(xs) / 6), max(ridge * 8, max(xs) * 2)
    fig, ax = plt.subplots(figsize=(10, 6.2), dpi=110)
    ax.set_xscale("log")
    ax.set_yscale("log")
    import numpy as np

    x = np.geomspace(x_lo, x_hi, 400)
    roof = np.minimum(peak, bw * x)
    ax.axvspan(x_lo, ridge, color="#fde2e2", alpha=0.55, lw=0)
    ax.axvspan(ridge, x_hi, color="#e0f0e0", alpha=0.55, lw=0)
    ax.plot(x, roof, color="black", lw=2.5, zorder=3)
    ax.axvline(ridge, color="grey", ls="--", lw=1.2)
    y_lo = min([bw * x_lo * 0.5] + [p.attained_flops / 3 for w in workloads for p in w.points])
    ax.set_ylim(y_lo, peak * 4)
    ax.set_xlim(x_lo, x_hi)
    ax.text(
        x_lo * 1.3,
        peak * 1.5,
        "MEMORY-BOUND: compute waits on weight + KV reads",
        color="#a33",
        fontsize=11,
        fontweight="bold",
        va="center",
    )
    ax.text(
        ridge * 1.3, peak / 2.2, "COMPUTE-BOUND", color="#262", fontsize=11, fontweight="bold", va="center"
    )
    ax.text(ridge * 1.3, peak / 3.6, f"peak {_fmt_flops(peak)} ({cprec})", fontsize=9, va="center")
    ax.annotate(
        f"ridge point\n{ridge:.0f} FLOP/byte",
        xy=(ridge, peak),
        xytext=(ridge * 1.5, peak * 2.3),
        fontsize=10,
        arrowprops={"arrowstyle": "->", "color": "grey"},
        color="dimgrey",
        va="center",
    )
    x_bw = x_lo * 2.2
    ax.annotate(
        f"slope = bandwidth {bw / 1e12:.3g} TB/s",
        xy=(x_bw, bw * x_bw),
        xytext=(x_bw * 1.3, bw * x_bw / 3.2),
        fontsize=9,
        arrowprops={"arrowstyle": "->", "color": "black"},
    )
    colors = ["#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]
    markers = ["o", "s", "D", "^", "v", "P"]
    for i, w in enumerate(workloads):
        c, mk = colors[i % len(colors)], markers[i % len(markers)]
        ax.plot(
            [p.arithmetic_intensity for p in w.points],
            [p.attained_flops for p in w.points],
            color=c,
            marker=mk,
            ms=10 - 2 * (i % 2),
            lw=2,
            label=w.label,
            zorder=4 + i,
            alpha=0.9,
        )
        # one line further out per batch size: on a flat roof the points share a height, and labels at one
        # offset ran into each other (B=8 over B=64); the first label above runs to the left, clear of the other
        # workload's first marker just right of it (B=1 over B=1)
        above = i % 2 == 0
        for j, p in enumerate(w.points):
            line = (i // 2) * len(w.points) + j
            left = above and j == 0
            ax.annotate(
                f"B={p.batch}: {p.seconds_per_token * 1e3:.3g} ms/token",
                (p.arithmetic_intensity, p.attained_flops),
                textcoords="offset points",
                xytext=(-6 if left else 6, 8 + 12 * line if above else -16 - 12 * line),
                fontsize=8.5,
                color=c,
                ha="right" if left else "left",
                fontweight="bold",
            )
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)", fontsize=11)
    ax.set_ylabel("attained FLOP/s per device", fontsize=11)
    ax.set_title(
        title or f"LLM decode on {hardware.display_name}: where each model sits on the roofline", fontsize=12
    )
    ctxs = {w.context for w in workloads}
    ctx = f", {ctxs.pop():,} tokens of context" if len(ctxs) == 1 and None not in ctxs else ""
    ax.legend(
        loc="lower right", fontsize=10, title=f"decode step (B = concurrent requests{ctx})", framealpha=0.95
    )
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".html", ".htm"):
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
        out.write_text(_roofline_html(hardware, workloads, buf.getvalue(), ridge, title), encoding="utf-8")
    else:
        fig.savefig(out)
        plt.close(fig)
    return out


def _roofline_html(
    hw: Hardware, workloads: Sequence[RooflineWorkload], svg: str, ridge: float, title: str | None
) -> str:
    svg = svg[svg.find("<svg") :]
    rows = "".join(
        f"<tr><td>{html.escape(w.label)}</td><td>{p.batch}</td><td>{p.arithmetic_intensity:.1f}</td>"
        f"<td>{_fmt_flops(p.attained_flops)}</td><td>{p.seconds_per_token * 1e3:.3g}</td>"
        f"<td>{'compute' if p.arithmetic_intensity >= ridge else 'memory'}</td></tr>"
        for w in workloads
        for p in w.points
    )
    t = html.escape(title or f"Roofline: {hw.display_name}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + t + "</title><style>body{font-family:"
        "sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}</style></head><body><h1>"
        + t
        + "</h1>"
        + svg
        + f"<p>Ridge point {ridge:.0f} FLOP/byte: left of it a decode step waits on memory, right of it on "
        "arithmetic.</p><table><tr><th>model</th><th>batch</th><th>FLOP/byte</th><th>attained</th>"
        "<th>ms/token</th><th>bound</th></tr>" + rows + "</table></body></html>"
    )


def plot_compare(rows: Sequence[Any], path: str | Path, *, hardware: Hardware) -> Path:
    """Bar chart of $ per 1M tokens and ms per token, generalist vs specialist, per (batch, context)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(path)
    labels = [
        f"B={r.batch}, S={r.context}\n{r.generalist.devices} vs {r.specialist.devices} GPU" for r in rows
    ]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), dpi=110)
    panels = (
        (axes[0], "usd_per_million_tokens", "$ per 1M output tokens (log)", 1.0, "cost"),
        (axes[1], "seconds_per_token", "ms per token, per user (log)", 1e3, "latency"),
    )
    for ax, attr, ylab, scale, what in panels:
        g = [getattr(r.generalist, attr) * scale for r in rows]
        s = [getattr(r.specialist, attr) * scale for r in rows]
        ax.bar(x - 0.2, g, 0.4, color="#d62728")
        ax.bar(x + 0.2, s, 0.4, color="#1f77b4")
        for xi, gv, sv in zip(x, g, s, strict=True):
            ax.text(xi, max(gv, sv) * 1.25, f"{gv / sv:.2g}x", ha="center", fontsize=11, fontweight="bold")
        ax.set_yscale("log")
        lo, hi = min(g + s), max(g + s)
        ax.set_ylim(lo / 2, hi * 4)
        ax.set_xticks(x, labels, fontsize=9)
        ax.set_ylabel(ylab)
        ax.set_title(f"{what}: generalist ÷ specialist above each pair", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    from matplotlib.patches import Patch

    fig.legend(
        handles=[
            Patch(color="#d62728", label=f"generalist: {rows[0].generalist.model}"),
            Patch(color="#1f77b4", label=f"specialist: {rows[0].specialist.model}"),
        ],
        loc="lower center",
        ncol=2,
        fontsize=10,
        frameon=False,
    )
    fig.suptitle(f"Generalist vs specialist decode on {hardware.display_name} (B = batch, S = context)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_plan(plan: Any, path: str | Path, *, cost_at: Callable[[Any, float], float]) -> Path:
    """Two panels: monthly cost per option at the planned volume (bars), and monthly cost against volume
    (``cost_at(option, requests_per_month)``; the self-hosted steps are replicas) with the planned volume and
    the break-even points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(path)
    opts = plan.options
    colors = [f"C{i % 10}" for i in range(len(opts))]
    fig, (ax_bar, ax_vol) = plt.subplots(1, 2, figsize=(13, 5.6), dpi=110)
    y = np.arange(len(opts))
    ax_bar.barh(y, [o.monthly_usd for o in opts], color=colors)
    for yi, o in zip(y, opts, strict=True):
        what = "API" if o.kind == "api" else f"{o.devices} device(s)"
        # "\\$": a bare "$" starts matplotlib's math mode
        extra = "" if o.usd_per_1k_correct is None else f", \\${o.usd_per_1k_correct:,.2f}/1k correct"
        miss = "  [misses p95]" if o.meets_latency is False else ""
        ax_bar.text(
            o.monthly_usd, yi, f" \\${o.monthly_usd:,.0f} ({what}{extra}){miss}", va="center", fontsize=8.5
        )
    ax_bar.set_yticks(y, [o.name for o in opts])
    ax_bar.invert_yaxis()
    ax_bar.set_xscale("log")
    lo = (
        min(o.monthly_usd for o in opts if o.monthly_usd > 0) if any(o.monthly_usd > 0 for o in opts) else 1.0
    )
    ax_bar.set_xlim(lo / 3, max(o.monthly_usd for o in opts) * 30)
    ax_bar.set_xlabel("\\$ per month (log)")
    vol = plan.workload.requests_per_month
    ax_bar.set_title(f"at {vol:,.0f} requests/month (peak ×{plan.peak_factor:.2g})", fontsize=10)
    ax_bar.grid(True, axis="x", alpha=0.3)
    xs = np.geomspace(vol / 100, vol * 100, 600)
    for o, c in zip(opts, colors, strict=True):
        ax_vol.plot(xs, [cost_at(o, x) for x in xs], color=c, label=o.name, lw=1.6)
    ax_vol.axvline(vol, color="0.4", ls="--", lw=1)
    for be in plan.break_evens:
        a = plan.option(be.a)
        for x in be.crossings[:1]:
            if vol / 100 <= x <= vol * 100:
                ax_vol.plot([x], [cost_at(a, x)], "k.", ms=7)
    ax_vol.set_xscale("log")
    ax_vol.set_yscale("log")
    ax_vol.set_xlabel("requests per month (log); dashed: the plan; dots: break-even")
    ax_vol.set_ylabel("\\$ per month (log)")
    ax_vol.set_title("cost against volume (steps: one more replica)", fontsize=10)
    ax_vol.grid(True, which="both", alpha=0.25)
    ax_vol.legend(fontsize=8.5, loc="upper left")
    w = plan.workload
    lat = "" if w.p95_latency_s is None else f", p95 ≤ {w.p95_latency_s:g} s"
    fig.suptitle(
        f"cadre cost plan: {w.input_tokens:g} in / {w.output_tokens:g} out tokens per request{lat}, "
        f"utilization ≤ {w.utilization_ceiling:.0%} (projected, not measured)"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
