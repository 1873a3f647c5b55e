"""The ``cadre`` console script: assembles the command groups and turns CadreError into one line."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from cadre.cli.help_format import RootGroup, apply_help_format
from cadre.cli.output import err_console
from cadre.errors import CadreError

__all__ = ["app", "main"]

# Each module defines ``register(app)``; heavy imports stay inside the commands so `cadre --help` is fast.
# The order `cadre --help` lists the commands in is help_format.COMMAND_ORDER, not this one.
COMMAND_MODULES = (
    "cost",
    "models",
    "train",
    "route",
    "knowledge",
    "evaluate",
    "serve",
    "pipeline",
    "traffic",
    "demo",
)

app = typer.Typer(
    name="cadre",
    cls=RootGroup,
    help="Replace one generalist LLM with a cadre of small specialized models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from cadre import __version__

        typer.echo(f"cadre {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print cadre's version and exit."
    ),
) -> None:
    """Replace one generalist LLM with a cadre of small specialized models."""


@app.command()
def version() -> None:
    """Print cadre's version."""
    from cadre import __version__

    typer.echo(__version__)


for _name in COMMAND_MODULES:
    importlib.import_module(f"cadre.cli.{_name}").register(app)
apply_help_format(app)


def main() -> None:
    """Entry point: run the app; expected failures print one line (set CADRE_DEBUG=1 for the traceback)."""
    try:
        app()
    except CadreError as err:
        if os.environ.get("CADRE_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":  # `python -m cadre.cli.main`, and `accelerate launch -m cadre.cli.main train ...`
    main()
