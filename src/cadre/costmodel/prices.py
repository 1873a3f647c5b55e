"""Hosted-API prices: the dated table shipped as ``data/api_prices.yaml`` (a source per row) and the bill of a
request. ``cadre cost plan`` and ``cadre eval`` both read it; a user table has the same shape."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import Field

from cadre.config.base import StrictModel, load_spec, parse_spec
from cadre.errors import ConfigError

__all__ = ["ApiPrice", "ApiPriceTable", "api_request_cost", "load_api_prices"]


class ApiPrice(StrictModel):
    """One model's list prices in dollars per million tokens."""

    input: float = Field(ge=0)
    """Dollars per million prompt tokens."""
    output: float = Field(ge=0)
    """Dollars per million completion tokens."""
    cached: float | None = Field(default=None, ge=0)
    """Dollars per million prompt tokens read from the provider's prompt cache (None: not known)."""
    as_of: str = ""
    source: str = ""


class ApiPriceTable(StrictModel):
    """``models: {name: {input, output, cached, as_of, source}}``."""

    models: dict[str, ApiPrice]


@cache
def _shipped() -> ApiPriceTable:
    text = resources.files("cadre.costmodel").joinpath("data/api_prices.yaml").read_text(encoding="utf-8")
    return parse_spec(ApiPriceTable, yaml.safe_load(text), source="cadre/costmodel/data/api_prices.yaml")


def load_api_prices(path: str | Path | None = None) -> ApiPriceTable:
    """The shipped price table, or the one in ``path`` (same shape)."""
    return _shipped() if path is None else load_spec(ApiPriceTable, path)


def api_request_cost(
    input_tokens: float, output_tokens: float, price: ApiPrice, *, cached_share: float = 0.0
) -> float:
    """Dollars for one request: (uncached input × input + cached input × cached + output × output) / 1e6.

    ``cached_share`` of the input tokens are billed at the cached price (the input price when none is known).
    """
    if not 0.0 <= cached_share <= 1.0:
        raise ConfigError(f"cached_share must be in [0, 1], got {cached_share}")
    cached_price = price.input if price.cached is None else price.cached
    fresh = input_tokens * (1.0 - cached_share)
    return (
        fresh * price.input + input_tokens * cached_share * cached_price + output_tokens * price.output
    ) / 1e6
