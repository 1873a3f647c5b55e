"""``cadre cost`` checks of the model: the paper audit, validation on published data, calibration here."""

from __future__ import annotations

from typing import Annotated

import typer

from cadre.cli.cost._options import JsonOpt, print_key_values
from cadre.cli.output import console, print_json

__all__ = ["audit", "calibrate", "validate"]


def audit(json_out: JsonOpt = False) -> None:
    """Re-derive every numeric claim of the paper and say whether it holds (within 10%)."""
    from cadre.costmodel import audit as run_audit
    from cadre.costmodel import audit_summary

    claims = run_audit()
    if json_out:
        print_json([c.to_json() for c in claims])
        return
    console.print(
        "[bold]The End of the One-Model Era: every numeric claim re-derived[/] (holds = within 10%)\n"
    )
    for c in claims:
        verdict = {True: "[green]holds[/]", False: "[bold red]DOES NOT HOLD[/]", None: "reported"}[c.holds]
        paper = "-" if c.paper_value is None else f"{c.paper_value:.4g}"
        console.print(
            f"[bold]{c.id}[/] {verdict}  {c.claim}\n      paper {paper} {c.unit}, computed "
            f"{c.computed_value:.4g} {c.unit}" + (f"\n      [dim]{c.note}[/]" if c.note else ""),
            highlight=False,
        )
    s = audit_summary(claims)
    console.print(f"\n[bold]{s['holds']} hold, {s['fails']} do not[/], of {len(claims)} checks")


def validate(
    rows: Annotated[bool, typer.Option("--rows", help="print every measurement")] = False,
    loso: Annotated[bool, typer.Option("--loso/--no-loso", help="leave-one-source-out refits")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Predict the shipped published measurements and report the error (fitted and leave-one-source-out)."""
    from rich.table import Table

    from cadre.costmodel import validate as run_validate

    rep = run_validate(loso=loso)
    if json_out:
        print_json(rep)
        return
    if rows:
        t = Table(title="measurements")
        for col in (
            "id",
            "source",
            "hardware",
            "model",
            "kind",
            "measured",
            "predicted",
            "err %",
            "LOSO err %",
        ):
            t.add_column(col, justify="right")
        for r in rep.rows:
            t.add_row(
                r.id,
                r.source,
                r.hardware,
                r.model,
                r.kind,
                f"{r.measured:.4g}",
                f"{r.predicted:.4g}",
                f"{r.error_pct:+.1f}",
                f"{r.loso_error_pct:+.1f}",
            )
        console.print(t)
    t = Table(
        title=f"validation: {rep.n} measurements, {rep.n_sources} sources, {rep.n_hardware} devices "
        f"({len(rep.hardware_families)} families)"
    )
    for col in ("source", "n", "median |err| %", "within ±30%", "LOSO median |err| %", "LOSO within ±30%"):
        t.add_column(col, justify="right")
    for src, s in rep.per_source.items():
        t.add_row(
            src,
            str(int(s["n"])),
            f"{s['median_abs_pct_error']:.1f}",
            f"{s['share_within_30pct']:.0%}",
            f"{s['loso_median_abs_pct_error']:.1f}",
            f"{s['loso_share_within_30pct']:.0%}",
        )
    t.add_row(
        "[bold]all (fitted)",
        str(rep.n),
        f"[bold]{rep.median_abs_pct_error:.1f}",
        f"[bold]{rep.share_within_30pct:.0%}",
        f"[bold]{rep.loso_median_abs_pct_error:.1f}",
        f"[bold]{rep.loso_share_within_30pct:.0%}",
    )
    t.add_row(
        "ideal roofline (no fit)",
        str(rep.n),
        f"{rep.ideal_median_abs_pct_error:.1f}",
        f"{rep.ideal_share_within_30pct:.0%}",
        "",
        "",
    )
    console.print(t)
    _print_per_engine(rep.per_engine)


def _print_per_engine(per_engine: dict[str, dict[str, float]]) -> None:
    """Per engine: the error on the engine's own points, in sample and when their source was left out."""
    from rich.table import Table

    t = Table(title="per engine (LOSO: each point predicted from factors fitted without its source)")
    for col in ("engine", "n", "median |err| %", "within ±30%", "LOSO median |err| %", "LOSO within ±30%"):
        t.add_column(col, justify="right")
    for eng, s in per_engine.items():
        t.add_row(
            eng,
            str(int(s["n"])),
            f"{s['median_abs_pct_error']:.1f}",
            f"{s['share_within_30pct']:.0%}",
            f"{s['loso_median_abs_pct_error']:.1f}",
            f"{s['loso_share_within_30pct']:.0%}",
        )
    console.print(t)


def calibrate(
    threads: Annotated[int, typer.Option("--threads", help="llama.cpp threads")] = 2,
    decode_check: Annotated[bool, typer.Option("--decode/--no-decode", help="measure SmolLM2 decode")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Measure this machine (bandwidth, matmul FLOP/s, SmolLM2 decode) and store it as hardware `local`."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from cadre.costmodel import calibrate as run_calibrate

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True, disable=json_out
    ) as prog:
        prog.add_task("measuring bandwidth, matmul and decode (< 60 s)...")
        c = run_calibrate(decode=decode_check, n_threads=threads)
    if json_out:
        print_json(c.to_json())
        return
    rows = [
        ("memory bandwidth (numpy copy)", f"{c.memory_bandwidth_bytes_per_s / 1e9:.2f} GB/s"),
        ("matmul (float32)", f"{c.matmul_flops / 1e9:.1f} GFLOP/s"),
    ]
    if c.decode_tokens_per_s is not None and c.predicted_decode_tokens_per_s is not None:
        rows += [
            (
                "SmolLM2-135M Q4_1 decode: predicted (roofline)",
                f"{c.predicted_decode_tokens_per_s:.1f} tokens/s",
            ),
            ("SmolLM2-135M Q4_1 decode: measured (llama.cpp)", f"{c.decode_tokens_per_s:.1f} tokens/s"),
            ("measured / predicted", f"{c.decode_efficiency:.0%}"),
        ]
    rows += [("stored as hardware 'local'", c.path), ("took", f"{c.seconds:.1f} s")]
    print_key_values("calibrate: this machine", rows)
