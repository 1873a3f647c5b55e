"""``cadre pipeline run|show``: run an ecosystem's pipeline in this process, or show its DAG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cadre.cli.output import console, print_json

__all__ = ["register"]

pipeline_app = typer.Typer(help="Run or show the pipelines an ecosystem declares (see docs/pipelines.md).")

_Eco = Annotated[Path, typer.Argument(help="the ecosystem.yaml that declares the pipeline")]
_Name = Annotated[str, typer.Argument(help="the pipeline's name (its key under pipelines:)")]


@pipeline_app.command("run")
def run_cmd(
    ecosystem: _Eco,
    name: _Name,
    input_text: Annotated[
        str,
        typer.Option("--input", "-i", help="the input: a JSON object, or plain text for a one-text input"),
    ],
    trace: Annotated[bool, typer.Option("--trace", help="also print each step's trace")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="machine-readable output (the trace included)")
    ] = False,
) -> None:
    """Run a pipeline once, loading the ecosystem's models in this process."""
    import json

    from cadre.ecosystem import parse_input, run_local

    with console.status(f"running pipeline {name} (loading models on first use)", spinner="dots"):
        result = run_local(ecosystem, name, parse_input(input_text))
    if json_out:
        print_json(result.to_dict(trace=True))
        return
    out = result.output
    console.print(
        json.dumps(out, indent=2, ensure_ascii=False) if result.structured else str(out), highlight=False
    )
    if trace:
        from rich.table import Table

        table = Table(title=f"run {result.run_id}: {result.latency_s:.2f}s", title_justify="left")
        for col in ("step", "kind", "status", "model", "s", "tokens in/out", "escalations"):
            table.add_column(col)
        for s in result.steps:
            table.add_row(
                s.id,
                s.kind,
                s.status,
                s.model or "-",
                f"{s.latency_s:.3f}",
                f"{s.prompt_tokens}/{s.completion_tokens}",
                "; ".join(s.escalations) or "-",
            )
        console.print(table)
    for c in result.citations:
        console.print(f"cited: {c.get('corpus')}: {c.get('source')} [{c.get('start')}:{c.get('end')}]")


@pipeline_app.command("show")
def show_cmd(
    ecosystem: _Eco,
    name: _Name,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="print the DAG as a Mermaid flowchart")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show a pipeline's DAG: one line per step (kind, target, what it waits for, its condition)."""
    from cadre.ecosystem import describe_pipeline

    info = describe_pipeline(ecosystem, name)
    if json_out:
        print_json(info)
    else:
        print(info["mermaid"] if mermaid else info["text"])


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.add_typer(pipeline_app, name="pipeline")
