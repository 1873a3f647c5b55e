"""``cadre eval``: run systems on a task, report, and compare two systems with paired statistics."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cadre.cli.output import console, print_json

if TYPE_CHECKING:
    from cadre.evaluate import RunSummary

eval_app = typer.Typer(
    help="Task-specific evaluation: accuracy with paired statistics, robustness, latency and cost.",
    no_args_is_help=True,
)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _print_summary(summary: RunSummary) -> None:
    from rich.table import Table

    from cadre.evaluate import robustness_rows, table1_rows

    rows = table1_rows(summary)
    table = Table(title=f"{summary.task}: {summary.n_items} items, baseline {summary.baseline}")
    hidden = ("Model", "Cost / 1k req", "Latency p95", "McNemar p", "Shots")  # all in report.md / --json
    cols = [c for c in rows[0] if c not in hidden] if rows else []
    for c in cols:
        table.add_column(c, justify="left" if c == "System" else "right")
    for r in rows:
        table.add_row(*(r[c] for c in cols))
    console.print(table)
    for comp in summary.comparisons:
        style = "green" if comp.bootstrap.low > 0 else "red" if comp.bootstrap.high < 0 else "yellow"
        console.print(f"[{style}]{comp.verdict}[/]", highlight=False)
    rrows = robustness_rows(summary)
    if rrows:
        rt = Table(title="Robustness")
        for c in rrows[0]:
            rt.add_column(c, justify="left" if c in ("System", "Perturbation") else "right")
        for r in rrows:
            rt.add_row(*r.values())
        console.print(rt)
    if not summary.complete:
        console.print("[yellow]incomplete run: re-run the same command to resume[/]")


@eval_app.command("run")
def run_cmd(
    task: Path = typer.Argument(..., help="Task spec YAML."),
    system: list[str] = typer.Option(
        None,
        "--system",
        "-s",
        help="NAME=MODEL[,adapter=PATH][,shots=K][,mode=complete][,price=NAME] | NAME=openai:MODEL@URL | "
        "NAME=routed:ROUTER_DIR,routes=ROUTE:SYSTEM;...,generalist=SYSTEM. Repeat for several systems.",
    ),
    systems_file: Path | None = typer.Option(None, "--systems", help="YAML list of system specs."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (an existing one is resumed)."),
    limit: int | None = typer.Option(None, help="Only the first N items."),
    repeats: int = typer.Option(1, help="Runs per item (with --temperature > 0); reports the spread."),
    temperature: float | None = typer.Option(None, help="Override the task's sampling temperature."),
    perturb: list[str] = typer.Option(
        None, "--perturb", "-p", help="Perturbations (comma-separated or repeated)."
    ),
    baseline: str | None = typer.Option(
        None, help="The system the others are compared with (default: first)."
    ),
    prices: Path | None = typer.Option(None, help="Price table YAML for hosted APIs (default: shipped one)."),
    threads: int | None = typer.Option(None, help="CPU threads for local models."),
    concurrency: int | None = typer.Option(
        None,
        help="Requests in flight per system (default 8): llama.cpp batches them, servers get them in "
        "parallel; cost per request comes from the throughput at this level. 1: one at a time.",
    ),
    latency_probe: int | None = typer.Option(
        None,
        "--latency-probe",
        help="With --concurrency > 1, answer the first N items again one at a time for the lone-user "
        "latency (default 8; 0: none).",
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md/report.html at the end."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Evaluate systems on a task; records go to OUT/items.jsonl, figures to OUT/summary.json."""

    import yaml

    from cadre.config import parse_spec
    from cadre.errors import ConfigError
    from cadre.evaluate import SystemSpec, load_task, parse_system, run_eval, write_report

    spec = load_task(task)
    specs = [parse_system(s) for s in system or []]
    if systems_file is not None:
        data = yaml.safe_load(systems_file.read_text(encoding="utf-8")) or []
        if isinstance(data, dict):
            data = data.get("systems", [])
        if not isinstance(data, list):
            raise ConfigError(f"{systems_file}: expected a list of systems (or `systems:` with a list)")
        specs += [
            parse_spec(SystemSpec, d, source=f"{systems_file}: systems.{i}") for i, d in enumerate(data)
        ]
    options: dict[str, Any] = {"n_threads": threads} if threads else {}
    summary = run_eval(
        spec,
        specs,
        out,
        limit=limit,
        perturbations=_split(perturb),
        repeats=repeats,
        temperature=temperature,
        baseline=baseline,
        prices=prices,
        progress=not json_out,
        backend_options=options,
        concurrency=concurrency,
        latency_probe=latency_probe,
    )
    paths = write_report(out, summary) if report else None
    if json_out:
        print_json(summary.to_json())
        return
    _print_summary(summary)
    if paths is not None:
        console.print(f"report: {paths.html}  ·  {paths.markdown}")


@eval_app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `cadre eval run`."),
    html: bool = typer.Option(True, "--html/--no-html", help="Write report.html (self-contained)."),
    baseline: str | None = typer.Option(None, help="Compare against this system instead."),
    prices: Path | None = typer.Option(None, help="Price table YAML for hosted APIs."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Recompute the figures from the recorded items and write report.md, report.html and lm_eval/ results."""
    from cadre.errors import DataError
    from cadre.evaluate import read_summary, summarize, write_report, write_summary

    summary = summarize(run_dir, prices=prices, baseline=baseline)
    with contextlib.suppress(DataError):  # keep the run's own duration, measured by `eval run`
        summary.seconds = read_summary(run_dir).seconds
    write_summary(run_dir, summary)
    paths = write_report(run_dir, summary, html_page=html)
    if json_out:
        print_json({**summary.to_json(), "files": {"markdown": paths.markdown, "html": paths.html}})
        return
    _print_summary(summary)
    console.print(f"report: {paths.html or ''}  ·  {paths.markdown}")


@eval_app.command("compare")
def compare_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    a: str = typer.Argument(..., help="System A (the candidate)."),
    b: str = typer.Argument(..., help="System B (the reference)."),
    confidence: float = typer.Option(0.95, help="Confidence level of the interval."),
    resamples: int = typer.Option(10_000, help="Bootstrap resamples."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Paired comparison of two systems of a run: bootstrap CI of the difference, McNemar, verdict."""
    from cadre.evaluate import compare_run

    comp = compare_run(run_dir, a, b, confidence=confidence, resamples=resamples)
    if json_out:
        print_json(comp)
        return
    boot = comp.bootstrap
    console.print(
        f"{comp.a}: {comp.a_value * 100:.1f}  ·  {comp.b}: {comp.b_value * 100:.1f}  ·  n = {comp.n}  ·  "
        f"difference {boot.difference * 100:+.1f} points, {boot.confidence:.0%} CI "
        f"[{boot.low * 100:+.1f}, {boot.high * 100:+.1f}]",
        highlight=False,
    )
    if comp.mcnemar is not None:
        m = comp.mcnemar
        console.print(
            f"McNemar ({m.method}): {comp.a} alone right on {m.b}, {comp.b} alone right on {m.c}, p = {m.p_value:.3g}",
            highlight=False,
        )
    style = "green" if boot.low > 0 else "red" if boot.high < 0 else "yellow"
    console.print(f"[{style}]{comp.verdict}[/]", highlight=False)


@eval_app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """The registered metrics and perturbations (including plugins)."""
    from cadre.evaluate import METRICS, PERTURBATIONS, get_perturbation

    perts = {n: get_perturbation(n).description for n in PERTURBATIONS.names()}
    if json_out:
        print_json({"metrics": METRICS.names(), "perturbations": perts})
        return
    console.print("[bold]metrics:[/] " + ", ".join(METRICS.names()))
    console.print("[bold]perturbations:[/]")
    for n, d in perts.items():
        console.print(f"  {n:16s} {d}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``cadre eval`` to the cadre app."""
    app.add_typer(eval_app, name="eval")
