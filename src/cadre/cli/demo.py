"""CLI: ``cadre data generate`` (synthetic task data) and ``cadre demo`` (the end-to-end demonstration)."""

from __future__ import annotations

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


def register(app: typer.Typer) -> None:
    """Add ``cadre data`` and ``cadre demo`` to the cadre app."""
    app.add_typer(data_app, name="data")
