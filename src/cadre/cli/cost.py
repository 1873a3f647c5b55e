"""``cadre cost``: the inference/training cost model (roofline, TCO, the paper audit, validation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cadre.cli.output import console, print_json

__all__ = ["register"]

cost_app = typer.Typer(
    name="cost",
    help="Roofline / TCO model of LLM inference and training; audits the paper's numbers.",
    no_args_is_help=True,
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="catalog name, config.json path or .gguf path")]
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
        help="efficiency factors: 'roofline' (ideal) or one fitted on published data: "
        "llama.cpp-cuda, llama.cpp-metal, trt-llm, vllm",
    ),
]
PriceOpt = Annotated[float | None, typer.Option("--price", help="override $ per device-hour")]


def _eff(engine: str) -> Any:
    from cadre.costmodel import Efficiency

    if engine in ("roofline", "ideal"):
        return Efficiency()
    from cadre.costmodel.validate import engine_efficiency

    return engine_efficiency(engine)


def _arch(name: str) -> Any:
    """The cost model's architecture for any model name cadre accepts (bundled runtime names included)."""
    from cadre.costmodel import load_model
    from cadre.runtime import costmodel_id

    return load_model(costmodel_id(name))


def _gb(x: float) -> str:
    return f"{x / 1e9:,.2f} GB"


def _kv_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)


@cost_app.command()
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
    from cadre.costmodel import cost_per_million_tokens, decode_step, load_hardware

    hw = load_hardware(hardware, price_per_hour=price)
    arch = _arch(model)
    d = decode_step(
        arch,
        hw,
        precision=precision,
        batch=batch,
        context=context,
        tp=tp,
        kv_precision=kv_precision,
        efficiency=_eff(engine),
        measured=measured,
    )
    usd = cost_per_million_tokens(d.tokens_per_second, hw, n_devices=tp)
    if json_out:
        print_json(
            {
                **d.__dict__,
                "engine": engine,
                "usd_per_million_tokens": usd,
                "price_per_hour": hw.price_per_hour,
            }
        )
        return
    crit = "never (KV traffic grows with batch)" if d.critical_batch is None else f"{d.critical_batch:,.0f}"
    _kv_table(
        f"decode: {arch.name} on {tp} x {hw.name} ({d.precision}, batch {batch}, context {context}, {engine})",
        [
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
            ("weights read per step", _gb(d.weight_bytes_read)),
            ("KV cache (all sequences)", _gb(d.kv_cache_bytes)),
            ("memory needed / available", f"{_gb(d.memory_needed_bytes)} / {_gb(d.memory_available_bytes)}"),
            ("$ per 1M tokens", f"{usd:,.4f} (at ${hw.price_per_hour}/device-hour)"),
        ],
    )


@cost_app.command()
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
    from cadre.costmodel import load_hardware
    from cadre.costmodel import prefill as run_prefill

    p = run_prefill(
        _arch(model),
        load_hardware(hardware),
        prompt_tokens=prompt_tokens,
        precision=precision,
        batch=batch,
        tp=tp,
        efficiency=_eff(engine),
    )
    if json_out:
        print_json({**p.__dict__, "engine": engine})
        return
    _kv_table(
        f"prefill: {p.model} on {tp} x {p.hardware} ({p.precision}, {prompt_tokens} tokens x {batch})",
        [
            ("time to first token", f"{p.seconds * 1e3:,.2f} ms"),
            (
                "bound",
                f"{p.bound} (memory {p.memory_seconds * 1e3:.2f} ms, compute {p.compute_seconds * 1e3:.2f} ms)",
            ),
            ("prompt tokens/s", f"{batch * prompt_tokens / p.seconds:,.0f}"),
            ("arithmetic intensity", f"{p.arithmetic_intensity:,.0f} FLOP/byte"),
        ],
    )


@cost_app.command()
def kv(
    model: ModelOpt,
    context: Annotated[int, typer.Option("--context", "-s")] = 4096,
    batch: Annotated[int, typer.Option("--batch", "-b")] = 1,
    kv_precision: Annotated[str, typer.Option("--kv-precision")] = "fp16",
    json_out: JsonOpt = False,
) -> None:
    """KV-cache bytes (MHA/GQA/MQA/MLA, sliding windows) vs the paper's 4·L·d formula."""
    from cadre.costmodel import kv_bytes, kv_bytes_per_token
    from cadre.costmodel.kv import paper_kv_bytes_per_token

    arch = _arch(model)
    out: dict[str, Any] = {
        "model": arch.name,
        "attention": arch.attention_kind,
        "context": context,
        "batch": batch,
        "kv_precision": kv_precision,
        "bytes_per_token": kv_bytes_per_token(arch, kv_precision),
        "paper_mha_bytes_per_token": paper_kv_bytes_per_token(arch.num_layers, arch.hidden_size),
        "kv_cache_bytes": kv_bytes(arch, context, batch=batch, precision=kv_precision),
        "sliding_window": arch.sliding_window,
    }
    if json_out:
        print_json(out)
        return
    _kv_table(
        f"KV cache: {arch.name} ({arch.attention_kind})",
        [
            ("bytes per token (all layers)", f"{out['bytes_per_token']:,.0f}"),
            ("paper formula 4·L·d", f"{out['paper_mha_bytes_per_token']:,.0f}"),
            (f"cache for {batch} x {context} tokens", _gb(out["kv_cache_bytes"])),
        ],
    )


@cost_app.command()
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
    from cadre.costmodel import kv_bytes, load_hardware, memory_needed, weight_bytes
    from cadre.costmodel.parallel import devices_needed

    if batch < 1 or context < 1:
        from cadre.errors import ConfigError

        raise ConfigError(f"{'batch' if batch < 1 else 'context'} must be >= 1")
    arch, hw = _arch(model), load_hardware(hardware)
    w = weight_bytes(arch, precision)
    need = memory_needed(arch, precision=precision, batch=batch, context=context, kv_precision=kv_precision)
    per_seq = kv_bytes(arch, context, precision=kv_precision)
    max_b = int((0.9 * hw.memory_bytes - w) // per_seq) if per_seq else 0
    out: dict[str, Any] = {
        "model": arch.name,
        "hardware": hw.name,
        "weight_bytes": w,
        "kv_bytes": need - w,
        "memory_needed_bytes": need,
        "device_memory_bytes": hw.memory_bytes,
        "devices_needed": devices_needed(need, hw.memory_bytes),
        "max_batch_on_one_device": max(max_b, 0),
        "total_params": arch.total_params(),
        "active_params": arch.active_params(),
    }
    if json_out:
        print_json(out)
        return
    _kv_table(
        f"fit: {arch.name} on {hw.name} (batch {batch}, context {context})",
        [
            (
                "parameters (active)",
                f"{arch.total_params() / 1e9:,.2f} B ({arch.active_params() / 1e9:,.2f} B)",
            ),
            ("weights", _gb(w)),
            ("KV cache", _gb(need - w)),
            ("total", _gb(need)),
            ("devices needed (90% usable)", str(out["devices_needed"])),
            ("max batch on one device", str(out["max_batch_on_one_device"])),
        ],
    )


@cost_app.command()
def compare(
    generalist: Annotated[str, typer.Option("--generalist", "-g")] = "gpt4-est",
    specialist: Annotated[str, typer.Option("--specialist", "-s")] = "llama-3-8b",
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
    from cadre.costmodel import compare as run_compare
    from cadre.costmodel import load_hardware

    hw = load_hardware(hardware, price_per_hour=price)
    rows = run_compare(
        _arch(generalist),
        _arch(specialist),
        hw,
        precision=precision,
        batches=tuple(batch or (1, 8, 64)),
        contexts=tuple(context or (1024,)),
        generalist_tp=generalist_tp,
        specialist_tp=specialist_tp,
        pue=pue,
        efficiency=_eff(engine),
    )
    if plot:
        from cadre.costmodel import plot_compare

        plot_compare(rows, plot, hardware=hw)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    t = Table(
        title=f"generalist {generalist} vs specialist {specialist} on {hw.name} ({precision}, {engine})"
    )
    cols = ("B", "S", "GPUs G/S", "ms/tok G", "ms/tok S", "$/1M G", "$/1M S", "kWh/1M G/S", "lat x", "$ x")
    for col in cols:
        t.add_column(col, justify="right", min_width=9 if col.startswith("kWh") else None)
    for r in rows:
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


@cost_app.command()
def roofline(
    hardware: HwOpt = "h100-sxm",
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="repeatable")] = None,
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
    from cadre.costmodel import load_hardware, plot_roofline, roofline_workload
    from cadre.costmodel.quant import compute_precision

    hw = load_hardware(hardware)
    models = model or ["llama-3-70b", "llama-3-8b"]
    wls = [
        roofline_workload(
            _arch(m),
            hw,
            precision=precision,
            batches=tuple(batch or (1, 8, 64, 256)),
            context=context,
            tp=tp,
        )
        for m in models
    ]
    written = [str(plot_roofline(hw, wls, p, precision=precision or "bf16")) for p in plot or []]
    cp = compute_precision(precision or "bf16")
    out: dict[str, Any] = {
        "hardware": hw.name,
        "precision": cp,
        "peak_flops": hw.flops(cp),
        "bandwidth": hw.bandwidth(),
        "ridge_point": hw.ridge_point(cp),
        "workloads": wls,
        "written": written,
    }
    if json_out:
        print_json(out)
        return
    from rich.table import Table

    t = Table(title=f"roofline {hw.name}: ridge {out['ridge_point']:.0f} FLOP/byte ({cp})")
    for col in ("model", "batch", "FLOP/byte", "TFLOP/s attained", "ms/token", "bound"):
        t.add_column(col, justify="right")
    for w in wls:
        for p in w.points:
            t.add_row(
                w.label,
                str(p.batch),
                f"{p.arithmetic_intensity:.1f}",
                f"{p.attained_flops / 1e12:.1f}",
                f"{p.seconds_per_token * 1e3:.2f}",
                "compute" if p.arithmetic_intensity >= out["ridge_point"] else "memory",
            )
    console.print(t)
    for path in written:
        console.print(f"chart: {path}")


@cost_app.command()
def audit(json_out: JsonOpt = False) -> None:
    """Re-derive every numeric claim of the paper and say whether it holds (within 10%)."""
    from cadre.costmodel.audit import audit as run_audit
    from cadre.costmodel.audit import audit_summary

    claims = run_audit()
    if json_out:
        print_json(
            [
                {
                    "id": c.id,
                    "claim": c.claim,
                    "paper_value": c.paper_value,
                    "computed_value": c.computed_value,
                    "unit": c.unit,
                    "holds": c.holds,
                    "note": c.note,
                }
                for c in claims
            ]
        )
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


@cost_app.command()
def validate(
    rows: Annotated[bool, typer.Option("--rows", help="print every measurement")] = False,
    loso: Annotated[bool, typer.Option("--loso/--no-loso", help="leave-one-source-out refits")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Predict the shipped published measurements and report the error (fitted and leave-one-source-out)."""
    from cadre.costmodel.validate import validate as run_validate

    rep = run_validate(loso=loso)
    if json_out:
        print_json(rep)
        return
    from rich.table import Table

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


@cost_app.command()
def calibrate(
    threads: Annotated[int, typer.Option("--threads", help="llama.cpp threads")] = 2,
    decode_check: Annotated[bool, typer.Option("--decode/--no-decode", help="measure SmolLM2 decode")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Measure this machine (bandwidth, matmul FLOP/s, SmolLM2 decode) and store it as hardware `local`."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from cadre.costmodel.calibrate import calibrate as run_calibrate

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True, disable=json_out
    ) as prog:
        prog.add_task("measuring bandwidth, matmul and decode (< 60 s)...")
        c = run_calibrate(decode=decode_check, n_threads=threads)
    if json_out:
        print_json({k: v for k, v in c.__dict__.items() if k != "hardware"})
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
    _kv_table("calibrate: this machine", rows)


@cost_app.command("train-cost")
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
    from cadre.costmodel import chinchilla_optimal, load_hardware, training_flops
    from cadre.costmodel.training import training_gpu_seconds
    from cadre.errors import ConfigError

    if gpus < 1:
        raise ConfigError(f"gpus must be >= 1, got {gpus}")
    if compute is not None:
        params, tokens = chinchilla_optimal(compute)
    if params is None or tokens is None:
        raise ConfigError("give --params and --tokens, or --compute")
    hw = load_hardware(hardware, price_per_hour=price)
    c = training_flops(params, tokens)
    gs = training_gpu_seconds(c, hw.flops(precision), mfu)
    out: dict[str, Any] = {
        "params": params,
        "tokens": tokens,
        "flops": c,
        "gpu_seconds": gs,
        "gpu_hours": gs / 3600,
        "wall_days": gs / gpus / 86400,
        "usd": gs / 3600 * hw.price_per_hour,
        "hardware": hw.name,
        "mfu": mfu,
    }
    if json_out:
        print_json(out)
        return
    _kv_table(
        f"training: {params:.3g} params x {tokens:.3g} tokens on {gpus} x {hw.name} at MFU {mfu:.0%}",
        [
            ("FLOPs (6ND)", f"{c:.3e}"),
            ("GPU-hours", f"{gs / 3600:,.0f}"),
            ("wall time", f"{gs / gpus / 86400:,.1f} days"),
            ("cost", f"${out['usd']:,.0f}"),
        ],
    )


@cost_app.command()
def speculative(
    target: Annotated[str, typer.Option("--target")] = "llama-3-70b",
    draft: Annotated[str, typer.Option("--draft")] = "llama-3-8b",
    hardware: HwOpt = "h100-sxm",
    precision: PrecOpt = "fp8",
    alpha: Annotated[float, typer.Option("--alpha", help="acceptance rate")] = 0.8,
    gamma: Annotated[int, typer.Option("--gamma", help="draft tokens per step")] = 4,
    target_tp: Annotated[int, typer.Option("--target-tp")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Speculative decoding speedup (Leviathan et al.), draft cost from the roofline; and the paper's formula."""
    from cadre.costmodel import decode_step, load_hardware, paper_speedup, speculative_speedup

    hw = load_hardware(hardware)
    t = decode_step(_arch(target), hw, precision=precision, tp=target_tp)
    d = decode_step(_arch(draft), hw, precision=precision)
    c = d.seconds_per_token / t.seconds_per_token
    out: dict[str, Any] = {
        "cost_ratio": c,
        "speedup": speculative_speedup(alpha, gamma, c),
        "paper_formula_speedup": paper_speedup(1.0, alpha),
        "alpha": alpha,
        "gamma": gamma,
    }
    if json_out:
        print_json(out)
        return
    _kv_table(
        f"speculative: {draft} drafting for {target} on {hw.name}",
        [
            ("draft/target step cost c", f"{c:.3f}"),
            ("speedup (Leviathan et al.)", f"{out['speedup']:.2f}x"),
            ("paper's 1/(1-β+βγ), β=1, γ=α (flagged)", f"{out['paper_formula_speedup']:.2f}x"),
        ],
    )


@cost_app.command("hardware")
def list_hardware(json_out: JsonOpt = False) -> None:
    """The hardware catalog."""
    from cadre.costmodel import hardware_names, load_hardware

    hws = [load_hardware(n) for n in hardware_names()]
    if json_out:
        print_json(hws)
        return
    from rich.table import Table

    t = Table(title="hardware catalog (spec figures; `local` = this machine)")
    for col in ("name", "device", "memory", "bandwidth", "BF16/FP16 dense", "FP8 dense", "TDP", "$/h"):
        t.add_column(col, justify="right")
    for h in hws:
        fp8 = h.peak_flops.get("fp8")
        t.add_row(
            h.name,
            h.display_name,
            _gb(h.memory_bytes),
            f"{h.bandwidth() / 1e12:.3g} TB/s",
            f"{h.flops('bf16') / 1e12:.4g} TF",
            f"{fp8.dense / 1e12:.4g} TF" if fp8 else "-",
            f"{h.tdp_watts:.0f} W",
            f"{h.price_per_hour:.2f}",
        )
    console.print(t)


@cost_app.command("models")
def list_models(json_out: JsonOpt = False) -> None:
    """The model-architecture catalog."""
    from cadre.costmodel import kv_bytes_per_token, load_model, model_names

    ms = [load_model(n) for n in model_names()]
    if json_out:
        print_json(
            [
                {
                    "name": m.name,
                    "total_params": m.total_params(),
                    "active_params": m.active_params(),
                    "attention": m.attention_kind,
                    "kv_bytes_per_token": kv_bytes_per_token(m),
                }
                for m in ms
            ]
        )
        return
    from rich.table import Table

    t = Table(title="model catalog (HF config.json fields)")
    for col in ("name", "params", "active", "layers", "hidden", "attention", "KV B/token (fp16)"):
        t.add_column(col, justify="right")
    for m in ms:
        t.add_row(
            m.name,
            f"{m.total_params() / 1e9:.2f} B",
            f"{m.active_params() / 1e9:.2f} B",
            str(m.num_layers),
            str(m.hidden_size),
            m.attention_kind,
            f"{kv_bytes_per_token(m):,.0f}",
        )
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.add_typer(cost_app, name="cost")
