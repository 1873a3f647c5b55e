"""``cadre cost`` serving questions: decode, prefill, KV cache, memory fit, comparison, roofline, speculation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cadre.cli.cost._options import (
    EngineOpt,
    HwOpt,
    JsonOpt,
    ModelOpt,
    PrecOpt,
    PriceOpt,
    costmodel_name,
    gigabytes,
    print_key_values,
)
from cadre.cli.output import console, print_json

__all__ = ["compare", "decode", "fit", "kv", "prefill", "roofline", "speculative"]


def decode(
    model: ModelOpt,
    hardware: HwOpt = "h100-sxm",
    precision: PrecOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b", help="concurrent sequences")] = 1,
    context: Annotated[int, typer.Option("--context", "-s", help="tokens already in each sequence")] = 1024,
    tp: Annotated[int, typer.Option("--tp", help="tensor-parallel devices")] = 1,
    kv_precision: Annotated[str, typer.Option("--kv-precision")] = "fp16",
    engine: EngineOpt = "roofline",
    measured: Annotated[
        bool, typer.Option("--measured", help="use measured, not datasheet, figures")
    ] = False,
    price: PriceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Time of one decode step at batch B and context S, and which roofline bound holds."""
    from cadre.costmodel import decode_cost

    cost = decode_cost(
        model,
        hardware,
        precision=precision,
        batch=batch,
        context=context,
        tp=tp,
        kv_precision=kv_precision,
        engine=engine,
        measured=measured,
        price_per_hour=price,
    )
    if json_out:
        print_json(cost.to_json())
        return
    d, e = cost.step, cost.engine
    crit = "never (KV traffic grows with batch)" if d.critical_batch is None else f"{d.critical_batch:,.0f}"
    print_key_values(
        f"decode: {d.model} on {tp} x {d.hardware} ({d.precision}, batch {batch}, context {context})",
        [
            ("engine", f"{e.label}; {e.reason}"),
            ("time per token (per user)", f"{d.seconds_per_token * 1e3:,.3f} ms"),
            ("tokens/s (all users)", f"{d.tokens_per_second:,.1f}"),
            (
                "bound",
                f"[bold]{d.bound}[/] (memory {d.memory_seconds * 1e3:.3f} ms, compute "
                f"{d.compute_seconds * 1e3:.3f} ms, comm {d.comm_seconds * 1e3:.3f} ms)",
            ),
            ("arithmetic intensity", f"{d.arithmetic_intensity:,.1f} FLOP/byte"),
            ("ridge point", f"{d.ridge_point:,.0f} FLOP/byte"),
            ("critical batch", crit),
            ("weights read per step", gigabytes(d.weight_bytes_read)),
            ("KV cache (all sequences)", gigabytes(d.kv_cache_bytes)),
            (
                "memory needed / available",
                f"{gigabytes(d.memory_needed_bytes)} / {gigabytes(d.memory_available_bytes)}",
            ),
            (
                "$ per 1M tokens",
                f"{cost.usd_per_million_tokens:,.4f} (at ${cost.price_per_hour}/device-hour)",
            ),
        ],
    )
    if e.ideal:
        console.print(
            "[yellow]This is the ideal roofline: an upper bound on speed (a lower bound on cost). Published "
            "engines reach 40-90% of it; `--engine auto` applies the factors fitted for this hardware's engine."
            "[/]"
        )


def prefill(
    model: ModelOpt,
    hardware: HwOpt = "h100-sxm",
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", "-n")] = 1024,
    precision: PrecOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b")] = 1,
    tp: Annotated[int, typer.Option("--tp")] = 1,
    engine: EngineOpt = "roofline",
    json_out: JsonOpt = False,
) -> None:
    """Prefill time (time to first token at batch 1)."""
    from cadre.costmodel import prefill_cost

    cost = prefill_cost(
        model, hardware, prompt_tokens=prompt_tokens, precision=precision, batch=batch, tp=tp, engine=engine
    )
    if json_out:
        print_json(cost.to_json())
        return
    p = cost.prefill
    print_key_values(
        f"prefill: {p.model} on {tp} x {p.hardware} ({p.precision}, {prompt_tokens} tokens x {batch})",
        [
            ("time to first token", f"{p.seconds * 1e3:,.2f} ms"),
            (
                "bound",
                f"{p.bound} (memory {p.memory_seconds * 1e3:.2f} ms, compute {p.compute_seconds * 1e3:.2f} ms)",
            ),
            ("prompt tokens/s", f"{cost.prompt_tokens_per_second:,.0f}"),
            ("arithmetic intensity", f"{p.arithmetic_intensity:,.0f} FLOP/byte"),
        ],
    )


def kv(
    model: ModelOpt,
    context: Annotated[int, typer.Option("--context", "-s")] = 4096,
    batch: Annotated[int, typer.Option("--batch", "-b")] = 1,
    kv_precision: Annotated[str, typer.Option("--kv-precision")] = "fp16",
    json_out: JsonOpt = False,
) -> None:
    """KV-cache bytes (MHA/GQA/MQA/MLA, sliding windows) vs the paper's 4·L·d formula."""
    from cadre.costmodel import kv_cache_size

    size = kv_cache_size(model, context=context, batch=batch, kv_precision=kv_precision)
    if json_out:
        print_json(size)
        return
    print_key_values(
        f"KV cache: {size.model} ({size.attention})",
        [
            ("bytes per token (all layers)", f"{size.bytes_per_token:,.0f}"),
            ("paper formula 4·L·d", f"{size.paper_mha_bytes_per_token:,.0f}"),
            (f"cache for {batch} x {context} tokens", gigabytes(size.kv_cache_bytes)),
        ],
    )


def fit(
    model: ModelOpt,
    hardware: HwOpt = "h100-sxm",
    precision: PrecOpt = None,
    batch: Annotated[int, typer.Option("--batch", "-b")] = 1,
    context: Annotated[int, typer.Option("--context", "-s")] = 4096,
    kv_precision: Annotated[str, typer.Option("--kv-precision")] = "fp16",
    json_out: JsonOpt = False,
) -> None:
    """Memory needed (weights + KV cache) and devices required."""
    from cadre.costmodel import memory_fit

    f = memory_fit(
        model, hardware, precision=precision, batch=batch, context=context, kv_precision=kv_precision
    )
    if json_out:
        print_json(f)
        return
    print_key_values(
        f"fit: {f.model} on {f.hardware} (batch {batch}, context {context})",
        [
            (
                "parameters (active)",
                f"{f.total_params / 1e9:,.2f} B ({f.active_params / 1e9:,.2f} B)",
            ),
            ("weights", gigabytes(f.weight_bytes)),
            ("KV cache", gigabytes(f.kv_bytes)),
            ("total", gigabytes(f.memory_needed_bytes)),
            ("devices needed (90% usable)", str(f.devices_needed)),
            ("max batch on one device", str(f.max_batch_on_one_device)),
        ],
    )


def compare(
    generalist: Annotated[str, typer.Option("--generalist", "-g", callback=costmodel_name)] = "gpt4-est",
    specialist: Annotated[str, typer.Option("--specialist", "-s", callback=costmodel_name)] = "llama-3-8b",
    hardware: HwOpt = "h100-sxm",
    precision: PrecOpt = "fp8",
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="repeatable")] = None,
    context: Annotated[list[int] | None, typer.Option("--context", help="repeatable")] = None,
    generalist_tp: Annotated[int | None, typer.Option("--generalist-tp")] = None,
    specialist_tp: Annotated[int | None, typer.Option("--specialist-tp")] = None,
    pue: Annotated[float, typer.Option("--pue")] = 1.0,
    engine: EngineOpt = "roofline",
    price: PriceOpt = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a bar chart (.png)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Generalist vs specialist: latency, $ per 1M tokens, devices and energy, per batch and context."""
    from rich.table import Table

    from cadre.costmodel import compare_models

    result = compare_models(
        generalist,
        specialist,
        hardware,
        precision=precision,
        batches=batch or (1, 8, 64),
        contexts=context or (1024,),
        generalist_tp=generalist_tp,
        specialist_tp=specialist_tp,
        pue=pue,
        engine=engine,
        price_per_hour=price,
        chart=plot,
    )
    if json_out:
        print_json(result.rows)
        return
    t = Table(
        title=f"generalist {generalist} vs specialist {specialist} on {result.hardware.name} "
        f"({precision}, {engine})"
    )
    cols = ("B", "S", "GPUs G/S", "ms/tok G", "ms/tok S", "$/1M G", "$/1M S", "kWh/1M G/S", "lat x", "$ x")
    for col in cols:
        t.add_column(col, justify="right", min_width=9 if col.startswith("kWh") else None)
    for r in result.rows:
        g, s = r.generalist, r.specialist
        t.add_row(
            str(r.batch),
            str(r.context),
            f"{g.devices}/{s.devices}",
            f"{g.seconds_per_token * 1e3:.2f}",
            f"{s.seconds_per_token * 1e3:.2f}",
            f"{g.usd_per_million_tokens:.3g}",
            f"{s.usd_per_million_tokens:.3g}",
            f"{g.kwh_per_million_tokens:.2g}/{s.kwh_per_million_tokens:.2g}",
            f"{r.latency_ratio:.1f}",
            f"{r.cost_ratio:.1f}",
        )
    console.print(t)
    if plot:
        console.print(f"chart: {plot}")


def roofline(
    hardware: HwOpt = "h100-sxm",
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="repeatable", callback=costmodel_name)
    ] = None,
    precision: PrecOpt = "fp8",
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="repeatable")] = None,
    context: Annotated[int, typer.Option("--context", "-s")] = 1024,
    tp: Annotated[int, typer.Option("--tp")] = 1,
    plot: Annotated[
        list[Path] | None, typer.Option("--plot", help="output .png/.svg/.html (repeatable)")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """The roofline of a device with models' decode steps placed on it (PNG / HTML chart)."""
    from rich.table import Table

    from cadre.costmodel import roofline_chart

    chart = roofline_chart(
        hardware,
        model or ["llama-3-70b", "llama-3-8b"],
        precision=precision,
        batches=batch or (1, 8, 64, 256),
        context=context,
        tp=tp,
        paths=plot or [],
    )
    if json_out:
        print_json(chart)
        return
    t = Table(title=f"roofline {chart.hardware}: ridge {chart.ridge_point:.0f} FLOP/byte ({chart.precision})")
    for col in ("model", "batch", "FLOP/byte", "TFLOP/s attained", "ms/token", "bound"):
        t.add_column(col, justify="right")
    for w in chart.workloads:
        for p in w.points:
            t.add_row(
                w.label,
                str(p.batch),
                f"{p.arithmetic_intensity:.1f}",
                f"{p.attained_flops / 1e12:.1f}",
                f"{p.seconds_per_token * 1e3:.2f}",
                chart.bound(p),
            )
    console.print(t)
    for path in chart.written:
        console.print(f"chart: {path}")


def speculative(
    target: Annotated[str, typer.Option("--target", callback=costmodel_name)] = "llama-3-70b",
    draft: Annotated[str, typer.Option("--draft", callback=costmodel_name)] = "llama-3-8b",
    hardware: HwOpt = "h100-sxm",
    precision: PrecOpt = "fp8",
    alpha: Annotated[float, typer.Option("--alpha", help="acceptance rate")] = 0.8,
    gamma: Annotated[int, typer.Option("--gamma", help="draft tokens per step")] = 4,
    target_tp: Annotated[int, typer.Option("--target-tp")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Speculative decoding speedup (Leviathan et al.), draft cost from the roofline; and the paper's formula."""
    from cadre.costmodel import speculative_estimate

    est = speculative_estimate(
        target, draft, hardware, precision=precision, alpha=alpha, gamma=gamma, target_tp=target_tp
    )
    if json_out:
        print_json(est.to_json())
        return
    print_key_values(
        f"speculative: {draft} drafting for {target} on {est.hardware}",
        [
            ("draft/target step cost c", f"{est.cost_ratio:.3f}"),
            ("speedup (Leviathan et al.)", f"{est.speedup:.2f}x"),
            ("paper's 1/(1-β+βγ), β=1, γ=α (flagged)", f"{est.paper_formula_speedup:.2f}x"),
        ],
    )
