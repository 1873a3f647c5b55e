"""The options several ``cadre cost`` commands share, and the key/value table they print."""

from __future__ import annotations

from typing import Annotated

import typer

from cadre.cli.output import console

__all__ = [
    "EngineOpt",
    "HwOpt",
    "JsonOpt",
    "ModelOpt",
    "PrecOpt",
    "PriceOpt",
    "costmodel_name",
    "gigabytes",
    "print_key_values",
]


def costmodel_name(value: str | list[str] | None) -> str | list[str] | None:
    """Map runtime model names (``smollm2``, ``gemma3-270m``) to the cost model's ids; others pass unchanged."""
    from cadre.runtime import costmodel_id

    if isinstance(value, list):
        return [costmodel_id(v) for v in value]
    return costmodel_id(value) if value is not None else None


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="catalog name, config.json path or .gguf path", callback=costmodel_name
    ),
]
HwOpt = Annotated[str, typer.Option("--hardware", "-H", help="catalog name (see `cadre cost hardware`)")]
PrecOpt = Annotated[
    str | None,
    typer.Option(
        "--precision", "-p", help="weights: bf16 fp16 fp8 int8 int4 nf4 q4_0 q4_k_m ... (GGUF: its own)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="efficiency factors: 'roofline' (the ideal bound), 'auto' (the engine the hardware family "
        "implies) or one fitted on published data: llama.cpp-cuda, llama.cpp-metal, trt-llm, vllm",
    ),
]
PriceOpt = Annotated[float | None, typer.Option("--price", help="override $ per device-hour")]


def gigabytes(x: float) -> str:
    return f"{x / 1e9:,.2f} GB"


def print_key_values(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column table: bold names left, values right."""
    from rich.table import Table

    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
