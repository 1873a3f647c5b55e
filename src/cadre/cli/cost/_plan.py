"""``cadre cost plan``: APIs, self-hosted models and local specialists priced side by side for one workload."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cadre.cli.cost._options import JsonOpt
from cadre.cli.output import console, print_json

if TYPE_CHECKING:
    from cadre.costmodel import CostPlan, Measured

__all__ = ["plan"]


def _self_hosted(text: str, engine: str) -> dict[str, Any]:
    """``MODEL@HARDWARE[:PRECISION]`` → a self-hosted option."""
    from cadre.cli.cost._options import costmodel_name
    from cadre.errors import ConfigError

    model, sep, rest = text.partition("@")
    if not sep or not model or not rest:
        raise ConfigError(
            f"--self-hosted {text!r}: write MODEL@HARDWARE or MODEL@HARDWARE:PRECISION (llama-3-8b@l4)"
        )
    hardware, _, precision = rest.partition(":")
    opt: dict[str, Any] = {
        "kind": "self_hosted",
        "name": text,
        "model": costmodel_name(model),
        "hardware": hardware,
        "engine": engine,
    }
    if precision:
        opt["precision"] = precision
    return opt


def _measured(run_dir: Path) -> tuple[dict[str, Measured], str | None]:
    """Each system's measured tokens and quality from a ``cadre eval`` run (and the run's baseline)."""
    from cadre.evaluate import measured_for_plan, read_summary

    summary = read_summary(run_dir)
    return measured_for_plan(summary), summary.baseline


def plan(
    config: Annotated[Path | None, typer.Argument(help="plan file (YAML): workload + options")] = None,
    requests: Annotated[float | None, typer.Option("--requests", help="requests per month")] = None,
    input_tokens: Annotated[
        float | None, typer.Option("--input-tokens", help="prompt tokens per request")
    ] = None,
    output_tokens: Annotated[float | None, typer.Option("--output-tokens", help="completion tokens")] = None,
    peak_factor: Annotated[
        float | None, typer.Option("--peak-factor", help="busiest hour's rate ÷ mean rate (default 2)")
    ] = None,
    p95: Annotated[float | None, typer.Option("--p95", help="required p95 latency, seconds")] = None,
    utilization: Annotated[
        float | None, typer.Option("--utilization", help="utilization ceiling at the peak (default 0.7)")
    ] = None,
    cached_share: Annotated[
        float | None, typer.Option("--cached-share", help="share of prompt tokens an API serves from cache")
    ] = None,
    api: Annotated[list[str] | None, typer.Option("--api", help="price-table row (repeatable)")] = None,
    self_hosted: Annotated[
        list[str] | None,
        typer.Option("--self-hosted", help="MODEL@HARDWARE[:PRECISION], rented (repeatable)"),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="for --self-hosted: auto, roofline or a fitted engine")
    ] = "auto",
    from_eval: Annotated[
        Path | None,
        typer.Option(
            "--from-eval",
            help="a `cadre eval` run: options named like its systems take their "
            "measured quality and token counts",
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option("--system", help="with --from-eval: the system whose tokens set the workload"),
    ] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="API price table (YAML)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write the chart (.png or .svg)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Monthly cost, hardware count, cost per 1k (correct) answers, break-even volumes and API-price sensitivity."""
    import yaml

    from cadre.config import parse_spec
    from cadre.costmodel import PlanSpec, apply_measured, plan_costs
    from cadre.errors import ConfigError, NotFoundError

    data: dict[str, Any] = {"workload": {}, "options": []}
    if config is not None:
        if not config.is_file():
            raise NotFoundError(f"plan file {str(config)!r} does not exist")
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{config}: a plan file is a mapping with workload: and options:")
        data.setdefault("workload", {})
        data.setdefault("options", [])
    w = data["workload"]
    measured: dict[str, Measured] = {}
    if from_eval is not None:
        measured, baseline = _measured(from_eval)
        key = system or baseline or next(iter(measured), None)
        if key not in measured:
            raise NotFoundError(f"--system {key!r} is not in {from_eval}; its systems: {', '.join(measured)}")
        m = measured[key]
        for field, value in (("input_tokens", m.input_tokens), ("output_tokens", m.output_tokens)):
            if value is not None:
                w.setdefault(field, value)
    flags = {
        "requests_per_month": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "peak_factor": peak_factor,
        "p95_latency_s": p95,
        "utilization_ceiling": utilization,
        "cached_input_share": cached_share,
    }
    w.update({k: v for k, v in flags.items() if v is not None})
    if peak_factor is not None:
        w.pop("daily_profile", None)
    data["options"] += [{"kind": "api", "name": n} for n in api or []]
    data["options"] += [_self_hosted(t, engine) for t in self_hosted or []]
    if prices is not None:
        data["prices"] = str(prices)
    spec = apply_measured(parse_spec(PlanSpec, data, source=str(config or "flags")), measured)
    result = plan_costs(spec, chart=plot)
    if json_out:
        print_json(result)
        return
    _print(result)


def _usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}" if abs(x) >= 0.1 else f"${x:,.4f}"


def _print(p: CostPlan) -> None:
    from rich.table import Table

    w = p.workload
    lat = "no latency target" if w.p95_latency_s is None else f"p95 ≤ {w.p95_latency_s:g} s"
    console.print(
        f"[bold]{w.requests_per_month:,.0f} requests/month[/], {w.input_tokens:g} in / {w.output_tokens:g} out "
        f"tokens, peak ×{p.peak_factor:.2g} ({p.peak_requests_per_second:.2f} req/s at the peak hour), {lat}, "
        f"utilization ≤ {w.utilization_ceiling:.0%}. [dim]Projected by the cost model, not measured.[/]"
    )
    t = Table(title="options")
    for col in ("option", "what", "devices", "p95 model", "$/month", "$/1k req", "quality", "$/1k correct"):
        t.add_column(col, justify="left" if col in ("option", "what") else "right")
    for o in p.options:
        latency = (
            "n/a"
            if o.latency_s is None
            else f"{o.latency_s:.2f} s" + (" ✗" if o.meets_latency is False else "")
        )
        t.add_row(
            ("[bold]" if o.name == p.cheapest else "") + o.name,
            o.summary,
            str(o.devices) if o.kind != "api" else "-",
            latency,
            _usd(o.monthly_usd),
            _usd(o.usd_per_1k_requests),
            "-" if o.quality is None else f"{o.quality:.1%}",
            _usd(o.usd_per_1k_correct),
        )
    console.print(t)
    for o in p.options:
        for n in o.notes:
            console.print(f"[dim]{o.name}: {n}[/]", highlight=False)
    console.print(
        f"cheapest: [bold]{p.cheapest or '-'}[/]; cheapest per correct answer: [bold]{p.cheapest_per_correct or '-'}[/]"
    )
    be = Table(title=f"break-even volumes (requests/month, up to {p.workload.requests_per_month * 100:,.0f})")
    for col in ("options", "cheaper now", "cheaper one changes at"):
        be.add_column(col)
    for b in p.break_evens:
        where = ", ".join(f"{x:,.0f}" for x in b.crossings) or "never in range"
        be.add_row(f"{b.a} vs {b.b}", b.cheaper_at_plan, where)
    console.print(be)
    st = Table(title="sensitivity: API prices × factor ($/month)")
    st.add_column("factor", justify="right")
    for o in p.options:
        st.add_column(o.name, justify="right")
    st.add_column("cheapest")
    st.add_column("cheapest per correct")
    for r in p.sensitivity:
        st.add_row(
            f"×{r.factor:g}",
            *(_usd(r.monthly_usd[o.name]) for o in p.options),
            r.cheapest or "-",
            r.cheapest_per_correct or "-",
        )
    console.print(st)
    if p.chart:
        console.print(f"chart: {p.chart}")
