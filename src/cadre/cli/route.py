"""``cadre route``: fit a router from labelled examples, evaluate it, explain a decision, calibrate a cascade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cadre.cli.output import console, print_json

__all__ = ["register"]

route_app = typer.Typer(
    name="route",
    help="Send each request to the right specialist, or to the generalist when none should answer.",
    no_args_is_help=True,
)


def _limit_threads() -> None:
    # Routing one request is latency-bound: one thread avoids oversubscribing small machines.
    import torch

    torch.set_num_threads(1)


@route_app.command("fit")
def fit_cmd(
    data: Path = typer.Option(..., "--data", help='JSONL {"text", "route"}; route null = out of scope.'),
    out: Path = typer.Option(..., "--out", help="Router directory to write."),
    strategy: str = typer.Option("auto", help="auto | centroid | knn | linear | rules | a plug-in name."),
    spec: Path | None = typer.Option(None, help="YAML RouterSpec (flags given here override it)."),
    ood_alpha: float | None = typer.Option(
        None, help="Max share of in-domain requests the out-of-domain gate may send to the generalist."
    ),
    min_examples: int | None = typer.Option(None, help="Fewest examples a route needs."),
    precision: str | None = typer.Option(
        None,
        help="Embedding precision: fp32 (default), bf16, or int8 (about half the routing latency on CPU).",
    ),
    encoder: str | None = typer.Option(
        None,
        help="frozen | finetuned | auto (default without --spec): fine-tune the encoder on the examples "
        "(SetFit pairs, minutes on CPU) and keep it when cross-validation says it routes better.",
    ),
    min_in_scope_accuracy: float | None = typer.Option(
        None, help='Threshold in your words: "keep in-scope accuracy >= X" (replaces --ood-alpha).'
    ),
    max_generalist_share: float | None = typer.Option(
        None, help='Threshold in your words: "send at most Y to the generalist" (replaces --ood-alpha).'
    ),
    ood_score: str | None = typer.Option(
        None,
        help="Gate score without out-of-scope examples: auto (default) | knn | mahalanobis | energy | a sum "
        "such as knn+energy.",
    ),
    max_seq_length: int | None = typer.Option(
        None, help="Truncate requests to this many tokens before embedding (default: the model's own)."
    ),
    latency_budget_ms: float | None = typer.Option(
        None,
        help="p99 per request on one core: time every encoder form (fp32/int8, full/truncated) on this "
        "machine and keep the most accurate one that fits (cross-validated).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the fit report as JSON."),
) -> None:
    """Fit a router (strategy, encoder and gate score chosen by cross-validation) and save it to --out."""
    from cadre.config import load_spec
    from cadre.route import RouterSpec, fit_router, load_examples, save_router

    base = load_spec(RouterSpec, spec) if spec else RouterSpec()
    overrides: dict[str, Any] = {"strategy": strategy} if strategy != "auto" or spec is None else {}
    if ood_alpha is not None:
        overrides["ood_alpha"] = ood_alpha
    if min_examples is not None:
        overrides["min_examples_per_route"] = min_examples
    if precision is not None:
        overrides["embedding_precision"] = precision
    if encoder is not None or spec is None:
        overrides["encoder"] = encoder or "auto"
    for key, value in (
        ("min_in_scope_accuracy", min_in_scope_accuracy),
        ("max_generalist_share", max_generalist_share),
        ("ood_score", ood_score),
        ("max_seq_length", max_seq_length),
        ("latency_budget_ms", latency_budget_ms),
    ):
        if value is not None:
            overrides[key] = value
    examples = load_examples(data)
    router = fit_router(examples, spec=base, progress=not json_out, **overrides)
    save_router(router, out)
    report = dict(getattr(router, "report", {}))
    report.update(router=str(out), routes=router.routes)
    if json_out:
        print_json(report)
        return
    console.print(
        f"[bold green]router saved[/] to {out}: strategy [bold]{report.get('strategy', router.kind)}[/]"
    )
    for key in (
        "routes",
        "cv_accuracy",
        "encoder",
        "latency",
        "ood_score",
        "threshold",
        "cv_ood_auroc",
        "examples",
        "out_of_scope_examples",
        "duplicates_dropped",
    ):
        if key in report:
            console.print(f"  {key}: {report[key]}")


@route_app.command("eval")
def eval_cmd(
    router_dir: Path = typer.Option(..., "--router", help="Router directory (from `cadre route fit`)."),
    data: Path = typer.Option(..., "--data", help='Labelled JSONL {"text", "route"[, "quality"]}.'),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    batch: bool = typer.Option(True, help="Also measure batch throughput."),
) -> None:
    """Accuracy, per-route precision/recall, OOD AUROC, coverage-risk, latency (and APGR/CPT with quality)."""
    from rich.table import Table

    from cadre.route import evaluate_router, load_examples, load_router

    _limit_threads()
    router = load_router(router_dir)
    report = evaluate_router(router, load_examples(data), batch_throughput=batch)
    if json_out:
        print_json(report)
        return

    def fmt(v: float | None, pct: bool = False) -> str:
        return "n/a" if v is None else (f"{v:.1%}" if pct else f"{v:.3f}")

    summary = Table(title=f"router {router_dir} on {data} ({report.n} requests)")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("accuracy (incl. generalist)", fmt(report.accuracy, True))
    summary.add_row("domain accuracy (in scope)", fmt(report.domain_accuracy, True))
    summary.add_row("out-of-domain AUROC", fmt(report.ood_auroc))
    summary.add_row("sent to generalist", fmt(report.generalist_share, True))
    summary.add_row(
        "out-of-scope recall / precision",
        f"{fmt(report.oos_recall)} / {fmt(report.oos_precision)}",
    )
    summary.add_row("in-scope requests kept", fmt(report.in_scope_kept, True))
    summary.add_row("FPR at 95% TPR", fmt(report.fpr95))
    summary.add_row("latency p50 / p99 (ms)", f"{report.p50_ms:.1f} / {report.p99_ms:.1f}")
    if report.batch_per_s:
        summary.add_row("batch throughput (req/s)", f"{report.batch_per_s:.0f}")
    if report.routellm and report.routellm.get("apgr") is not None:
        r = report.routellm
        summary.add_row("APGR (random = 0.5)", fmt(r["apgr"]))
        summary.add_row("CPT(50%) / CPT(80%)", f"{fmt(r['cpt50'], True)} / {fmt(r['cpt80'], True)}")
    console.print(summary)
    table = Table(title="per route")
    for col in ("route", "precision", "recall", "support"):
        table.add_column(col, justify="left" if col == "route" else "right")
    for route, m in report.per_route.items():
        table.add_row(route, fmt(m["precision"]), fmt(m["recall"]), str(m["support"]))
    console.print(table)
    labels = report.confusion["labels"]
    conf = Table(title="confusion (rows: truth, columns: routed)")
    conf.add_column("")
    for lab in labels:
        conf.add_column(lab, justify="right")
    for lab, row in zip(labels, report.confusion["matrix"]):
        conf.add_row(lab, *[str(v) for v in row])
    console.print(conf)


@route_app.command("explain")
def explain_cmd(
    text: str = typer.Argument(..., help="The request to route."),
    router_dir: Path = typer.Option(..., "--router", help="Router directory."),
    k: int = typer.Option(5, help="How many nearest training examples to show."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Which route, its score, the per-route probabilities and the nearest training examples."""
    from rich.table import Table

    from cadre.route import load_router

    router = load_router(router_dir)
    exp = router.explain(text, k=k)
    if json_out:
        print_json(exp)
        return
    d = exp.decision
    console.print(f"route: [bold]{d.route}[/]  score {d.score:.3f}  ({d.reason})")
    console.print(f"  encoder: {exp.details.get('encoder')} ({exp.details.get('embedding_model')})")
    latency = exp.details.get("latency")
    if latency:
        form = latency["forms"][latency["chosen"]]
        console.print(
            f"  latency budget {latency['budget_ms']:g} ms p99 -> {latency['chosen']} "
            f"(measured at fit: p50 {form['p50_ms']:.1f} / p99 {form['p99_ms']:.1f} ms)"
        )
    threshold = exp.details.get("threshold")
    if threshold:
        est = threshold.get("held_out_estimate") or {}
        extra = ", ".join(f"{k} {v:.3f}" for k, v in est.items() if isinstance(v, float))
        console.print(
            f"  threshold: {threshold.get('target')} -> ood_alpha {threshold.get('ood_alpha')}"
            + (f" (held out: {extra})" if extra else "")
        )
    if d.scores:
        console.print(
            "  " + "  ".join(f"{r}={p:.3f}" for r, p in sorted(d.scores.items(), key=lambda kv: -kv[1]))
        )
    if exp.nearest:
        table = Table(title="nearest training examples")
        table.add_column("similarity", justify="right")
        table.add_column("route")
        table.add_column("text")
        for n in exp.nearest:
            table.add_row(f"{n.similarity:.3f}", n.route or "(out of scope)", n.text[:100])
        console.print(table)


@route_app.command("calibrate")
def calibrate_cmd(
    scores: Path = typer.Option(
        ..., "--scores", help='JSONL {"confidence": float, "error": 0|1} per request.'
    ),
    out: Path = typer.Option(..., "--out", help="Cascade JSON to write."),
    signal: str = typer.Option("mean_logprob", help="Name of the confidence signal the scores come from."),
    max_error_rate: float | None = typer.Option(None, help="Target: at most this error rate among kept."),
    max_generalist_share: float | None = typer.Option(None, help="Target: at most this share escalated."),
    delta: float = typer.Option(0.1, help="Allowed failure probability of the error-rate guarantee."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Set a cascade threshold from calibration scores and a target (error rate among kept, or escalation share)."""
    import json

    from cadre.errors import ConfigError, DataError
    from cadre.route import (
        SIGNALS,
        Cascade,
        Verifier,
        calibrate_error_rate,
        calibrate_generalist_share,
    )

    if (max_error_rate is None) == (max_generalist_share is None):
        raise ConfigError("give exactly one target: --max-error-rate X or --max-generalist-share Y")
    conf, err = [], []
    for n, raw in enumerate(scores.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            conf.append(float(obj["confidence"]))
            err.append(float(obj.get("error", 0)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise DataError(f'{scores}:{n}: expected {{"confidence": 0.9, "error": 0}}') from None
    if max_error_rate is not None:
        cal = calibrate_error_rate(conf, err, max_error_rate=max_error_rate, delta=delta)
    else:
        cal = calibrate_generalist_share(conf, max_share=float(max_generalist_share or 0.0))
    make = SIGNALS.get(signal)
    sig = make() if make else Verifier(lambda m, t: 0.0, name=signal)
    Cascade(signal=sig, threshold=cal.threshold, calibration=cal).save(out)
    if json_out:
        print_json(cal.to_json())
        return
    console.print(f"[bold green]cascade saved[/] to {out}: keep when {signal} >= {cal.threshold:.4g}")
    console.print(f"  {cal.guarantee}")


def register(app: typer.Typer) -> None:
    """Add ``cadre route`` to the cadre app."""
    app.add_typer(route_app, name="route")
