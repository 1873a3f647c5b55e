"""``cadre cost``: the inference/training cost model (roofline, TCO, the paper audit, validation)."""

from __future__ import annotations

import typer

from cadre.cli.cost._catalogs import list_hardware, list_models
from cadre.cli.cost._evidence import audit, calibrate, validate
from cadre.cli.cost._inference import compare, decode, fit, kv, prefill, roofline, speculative
from cadre.cli.cost._plan import plan
from cadre.cli.cost._training import train_cost

__all__ = ["cost_app", "register"]

cost_app = typer.Typer(
    name="cost",
    help="Roofline / TCO model of LLM inference and training; audits the paper's numbers.",
    no_args_is_help=True,
)

for _command in (plan, decode, prefill, kv, fit, compare, roofline, audit, validate, calibrate):
    cost_app.command()(_command)
cost_app.command("train-cost")(train_cost)
cost_app.command()(speculative)
cost_app.command("hardware")(list_hardware)
cost_app.command("models")(list_models)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.add_typer(cost_app, name="cost")
