"""CLI: ``cadre data generate`` (synthetic task data) and ``cadre demo`` (the end-to-end demonstration)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from cadre.cli.output import console, print_json

__all__ = ["register"]

data_app = typer.Typer(help="Generate the synthetic task data sets (seeded, offline).", no_args_is_help=True)


@data_app.command("generate")
def data_generate(
    task: str = typer.Argument(..., help="intents | invoices | normalize | out_of_scope | all"),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory to write (one sub-directory per task with 'all')."
    ),
    n: int | None = typer.Option(
        None, "--n", help="Total examples: split 80/10/10 into train/validation/test."
    ),
    n_train: int = typer.Option(800, "--n-train", help="Training examples (ignored when --n is given)."),
    n_val: int = typer.Option(100, "--n-val", help="Validation examples (ignored when --n is given)."),
    n_test: int = typer.Option(200, "--n-test", help="Test examples (ignored when --n is given)."),
    n_oos: int | None = typer.Option(
        None, "--n-oos", help="Held-out out-of-scope requests (default: --n-test)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same files."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write train/validation/test JSONL (chat records + router rows) and an out-of-scope set for TASK."""
    from rich.table import Table

    from cadre.synth import GENERATORS, TASKS, write_task

    if n is not None:
        n_val = n_test = max(1, n // 10)
        n_train = max(1, n - n_val - n_test)
    names = list(TASKS) if task == "all" else [task]
    if task != "all":
        GENERATORS.get(task)  # unknown names fail here with "did you mean"
    results = []
    for name in names:
        target = out / name if task == "all" else out
        results.append(write_task(name, target, n_train, n_val, n_test, seed, n_oos=n_oos))
    if as_json:
        print_json([{"task": r.task, "files": r.files, "counts": r.counts, "seed": r.seed} for r in results])
        return
    table = Table(title="generated data")
    for col in ("task", "split", "examples", "file"):
        table.add_column(col)
    for r in results:
        for split, count in r.counts.items():
            table.add_row(r.task, split, str(count), str(r.files[split]))
    console.print(table)


def demo(
    fast: bool = typer.Option(
        False, "--fast", help="The few-minute smoke run: tiny splits, 4k training tokens per task."
    ),
    out: Path = typer.Option(
        Path("demo-out"), "--out", "-o", help="Output folder; a re-run reuses finished steps."
    ),
    generalist: list[str] = typer.Option(
        [],
        "--generalist",
        help="Also compare an OpenAI-compatible generalist: openai:MODEL@URL (repeatable).",
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Environment variable holding the --generalist endpoint's API key."
    ),
    budget: str | None = typer.Option(
        None, "--budget", help="Training per specialist: a duration (150s) or a token count (60k tokens)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for data, training and perturbations."),
    price_per_hour: float | None = typer.Option(
        None, "--price-per-hour", help="USD/hour of this machine for the cost columns (default: cost model)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for training and inference."),
    pass_tokens: int | None = typer.Option(
        None,
        "--pass-tokens",
        help="Most tokens a training forward pass computes (default 512; more can be faster on long examples "
        "and takes more memory).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Generate data, train a specialist per task, fit the router, evaluate against a generalist, report."""
    from cadre.demo import DemoConfig, run_demo

    overrides: dict[str, object] = {
        "out": out,
        "seed": seed,
        "remote_generalists": generalist,
        "remote_api_key_env": api_key_env,
        "price_per_hour": price_per_hour,
        "threads": threads,
    }
    if budget is not None:
        overrides["train_budget"] = budget
    if pass_tokens is not None:
        overrides["pass_tokens"] = pass_tokens
    cfg = DemoConfig.preset(fast=fast, **overrides)
    if as_json:  # stdout carries only the JSON: progress output of the steps goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            result = run_demo(cfg)
    else:
        result = run_demo(cfg)
    if as_json:
        print_json(
            {
                "out": result.out,
                "report_html": result.report_html,
                "report_md": result.report_md,
                "ecosystem": result.ecosystem,
                "serve_command": result.serve_command,
                "table": result.table,
                "steps": {k: vars(v) for k, v in result.steps.items()},
                "seconds": result.seconds,
            }
        )
        return
    from rich.table import Table

    table = Table(title="Table 1 on this machine (specialist vs generalist, same test items)")
    for col in ("task", "generalist", "specialist", "advantage (95% CI)", "cost ratio"):
        table.add_column(col)
    for row in result.table:
        diff, lo, hi = row.get("difference"), row.get("low"), row.get("high")
        adv = (
            "n/a"
            if diff is None
            else f"{100 * diff:+.1f} pp [{100 * (lo or 0):+.1f}, {100 * (hi or 0):+.1f}]"
        )
        ratio = row.get("cost_ratio")
        table.add_row(
            row["task"],
            "n/a" if row.get("generalist") is None else f"{100 * row['generalist']:.1f}%",
            "n/a" if row.get("specialist") is None else f"{100 * row['specialist']:.1f}%",
            adv,
            "n/a" if ratio is None else f"{ratio:.1f}x",
        )
    console.print(table)
    console.print(f"report: {result.report_html}  (and {result.report_md})")
    if result.ecosystem is not None:
        console.print("\nServe the ecosystem:\n")
        console.print(f"  {result.serve_command}", highlight=False)
        console.print("\nand call it:\n")
        console.print(result.client_snippet, highlight=False, markup=False)
    console.print(f"\n[dim]finished in {result.seconds:.0f} s[/]")


def register(app: typer.Typer) -> None:
    """Add ``cadre data`` and ``cadre demo`` to the cadre app."""
    app.add_typer(data_app, name="data")
    app.command("demo")(demo)
