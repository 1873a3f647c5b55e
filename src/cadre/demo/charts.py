"""The demo report's charts: scores per task, the routing confusion matrix, and the roofline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cadre.demo.table1 import Table1Row

__all__ = ["confusion_chart", "roofline_chart", "roofline_text", "scores_chart"]


def scores_chart(rows: list[Table1Row], path: Path) -> Path | None:
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
            # the specialist's CI, shifted to its bar: generalist + [low, high] of the paired difference,
            # clipped to the metric's range (a score cannot leave [0, 100] %)
            lo = min(max(100 * (r.generalist + r.low), 0.0), 100 * r.specialist)
            hi = max(min(100 * (r.generalist + r.high), 100.0), 100 * r.specialist)
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


def confusion_chart(router_eval: dict[str, Any] | None, path: Path) -> Path | None:
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


def roofline_chart(
    hardware: str, price: float, models: list[tuple[str, str, str]], path: Path
) -> tuple[Path | None, list[dict[str, Any]], str]:
    """Roofline of ``hardware`` with each (label, catalog model, precision) placed; plus a per-model table."""
    try:
        from cadre.costmodel import (
            decode_step,
            load_hardware,
            load_model,
            plot_roofline,
            roofline_workload,
        )
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


def roofline_text(facts: list[dict[str, Any]]) -> str:
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
