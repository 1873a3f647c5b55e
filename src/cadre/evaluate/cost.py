"""What each request cost: measured time x the hardware's hourly price (local), or tokens x list prices (hosted).

Local systems use the cost model, ``cadre.costmodel.tco.cost_per_request(seconds, load_hardware(name))``
(the machine's price per hour times the seconds the request held it; the evaluation runs one request at a
time, so nothing is shared). Hosted APIs use a price table of dollars per million input and output tokens,
shipped by the cost model as ``cadre/costmodel/data/api_prices.yaml`` (dated, a source per row); pass your own with
``prices=`` / ``--prices``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadre.costmodel.prices import ApiPrice as Price
from cadre.costmodel.prices import ApiPriceTable as PriceTable
from cadre.costmodel.prices import api_request_cost, load_api_prices
from cadre.errors import CadreError
from cadre.runtime.registry import parse_model

if TYPE_CHECKING:
    from cadre.evaluate.systems import SystemSpec

__all__ = ["CostSummary", "Price", "PriceTable", "api_cost", "load_prices", "summarize_cost"]


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The shipped price table (cadre.costmodel's), or the one in ``path`` (same shape: ``models: {name: {...}}``)."""
    return load_api_prices(path)


def api_cost(prompt_tokens: int, completion_tokens: int, price: Price) -> float:
    """Dollars for one hosted request: tokens x (dollars per million tokens) / 1e6, input and output apart."""
    return api_request_cost(prompt_tokens, completion_tokens, price)


@dataclass(frozen=True)
class CostSummary:
    """Cost of a system's requests in one run."""

    method: str | None  # "hardware:local", "price:gpt-4o-mini", "mixed" (routed) or None when unknown
    per_request: float | None  # mean dollars per request
    per_1000: float | None
    note: str = ""


def cost_method(spec: SystemSpec, prices: PriceTable) -> tuple[str | None, str]:
    """How a system's requests are costed: ``hardware:NAME``, ``price:NAME`` or None (with the reason)."""
    if spec.kind == "model":
        return f"hardware:{spec.hardware}", ""
    if spec.kind == "pipeline":
        return f"hardware:{spec.hardware}", "the whole pipeline run, costed as local hardware"
    if spec.kind == "openai":
        ref = parse_model(spec.model or "")
        key = spec.price or ref.remote_model or ""
        if key in prices.models:
            return f"price:{key}", ""
        if spec.price is None and ref.is_local_endpoint:
            return f"hardware:{spec.hardware}", "a local OpenAI-compatible server, costed as local hardware"
        return (
            None,
            f"no price for {key!r} in the price table; add price=NAME to the system or pass --prices FILE",
        )
    return None, "routed: costed per request by the system each request went to"


def _hardware(spec: SystemSpec, cache: dict[str, Any]) -> Any:
    from cadre.costmodel.hardware import load_hardware

    key = f"{spec.hardware}@{spec.price_per_hour}"
    if key not in cache:
        hw = load_hardware(spec.hardware, price_per_hour=spec.price_per_hour)
        if hw.price_per_hour <= 0:
            raise CadreError(
                f"hardware {spec.hardware!r} has no price per hour; run `cadre cost calibrate`, or give the "
                "system price_per_hour=USD or hardware=NAME (e.g. l4)"
            )
        cache[key] = hw
    return cache[key]


def _request_cost(
    method: str, spec: SystemSpec, record: Mapping[str, Any], prices: PriceTable, hw_cache: dict[str, Any]
) -> float:
    kind, _, name = method.partition(":")
    if kind == "price":
        price = prices.models[name]
        return api_cost(
            int(record.get("prompt_tokens") or 0), int(record.get("completion_tokens") or 0), price
        )
    from cadre.costmodel.tco import cost_per_request

    # with several requests in flight, each holds a share of the machine (the paper's C = n·c·t/3600 / batch)
    concurrency = max(1, int(record.get("concurrency") or 1))
    return cost_per_request(
        float(record.get("latency_s") or 0.0), _hardware(spec, hw_cache), concurrency=concurrency
    )


def summarize_cost(
    spec: SystemSpec,
    records: Sequence[Mapping[str, Any]],
    prices: PriceTable,
    *,
    specs: Mapping[str, SystemSpec] | None = None,
) -> CostSummary:
    """Mean cost per request (and per 1,000) of ``records`` (one system's answered requests).

    A routed system's requests are costed by the system each one went to (``route`` in the record).
    """
    answered = [r for r in records if not r.get("error")]
    if not answered:
        return CostSummary(method=None, per_request=None, per_1000=None, note="no answered requests")
    hw_cache: dict[str, Any] = {}
    try:
        if spec.kind != "routed":
            method, note = cost_method(spec, prices)
            if method is None:
                return CostSummary(method=None, per_request=None, per_1000=None, note=note)
            costs = [_request_cost(method, spec, r, prices, hw_cache) for r in answered]
            mean = sum(costs) / len(costs)
            return CostSummary(method=method, per_request=mean, per_1000=mean * 1000, note=note)
        specs = specs or {}
        costs = []
        for r in answered:
            route = r.get("route")
            target_name = spec.routes.get(str(route)) if route in spec.routes else spec.generalist
            target = specs.get(target_name or "")
            if target is None:
                return CostSummary(None, None, None, note=f"route {route!r} went to an unknown system")
            method, note = cost_method(target, prices)
            if method is None:
                return CostSummary(None, None, None, note=f"via {target.name}: {note}")
            costs.append(_request_cost(method, target, r, prices, hw_cache))
    except CadreError as err:
        return CostSummary(method=None, per_request=None, per_1000=None, note=str(err))
    mean = sum(costs) / len(costs)
    return CostSummary(method="mixed", per_request=mean, per_1000=mean * 1000, note="")
