"""``cadre cost train-cost``: training compute, time and dollars (or the Chinchilla-optimal size)."""

from __future__ import annotations

from typing import Annotated

import typer

from cadre.cli.cost._options import HwOpt, JsonOpt, PriceOpt, print_key_values
from cadre.cli.output import print_json

__all__ = ["train_cost"]


def train_cost(
    params: Annotated[float | None, typer.Option("--params", help="parameters N (e.g. 7e9)")] = None,
    tokens: Annotated[float | None, typer.Option("--tokens", help="training tokens D")] = None,
    compute: Annotated[
        float | None, typer.Option("--compute", help="FLOP budget C: Chinchilla-optimal N, D")
    ] = None,
    hardware: HwOpt = "h100-sxm",
    precision: Annotated[str, typer.Option("--precision", "-p")] = "bf16",
    mfu: Annotated[float, typer.Option("--mfu", help="model FLOP utilization")] = 0.4,
    gpus: Annotated[int, typer.Option("--gpus")] = 1,
    price: PriceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Training compute (6ND), wall time at an MFU on N GPUs, dollars; or Chinchilla-optimal N and D."""
    from cadre.costmodel import training_cost

    cost = training_cost(
        params=params,
        tokens=tokens,
        compute=compute,
        hardware=hardware,
        precision=precision,
        mfu=mfu,
        gpus=gpus,
        price_per_hour=price,
    )
    if json_out:
        print_json(cost)
        return
    print_key_values(
        f"training: {cost.params:.3g} params x {cost.tokens:.3g} tokens on {gpus} x {cost.hardware} "
        f"at MFU {cost.mfu:.0%}",
        [
            ("FLOPs (6ND)", f"{cost.flops:.3e}"),
            ("GPU-hours", f"{cost.gpu_hours:,.0f}"),
            ("wall time", f"{cost.wall_days:,.1f} days"),
            ("cost", f"${cost.usd:,.0f}"),
        ],
    )
