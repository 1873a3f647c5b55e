"""The typed input of ``cadre cost plan``: a workload and the options to price (YAML file or flags)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from cadre.config.base import StrictModel, load_spec

__all__ = [
    "HOURS_PER_MONTH",
    "ApiOption",
    "Measured",
    "PlanOption",
    "PlanSpec",
    "SelfHostedOption",
    "Workload",
    "apply_measured",
    "load_plan",
]

HOURS_PER_MONTH = 730.0  # 365 days × 24 h ÷ 12 months

Fraction = Annotated[float, Field(ge=0, le=1)]


class Workload(StrictModel):
    """The traffic to serve: volume, its daily shape, request size and the service level."""

    requests_per_month: float = Field(gt=0)
    input_tokens: float = Field(gt=0)
    """Prompt tokens per request (mean)."""
    output_tokens: float = Field(gt=0)
    """Completion tokens per request (mean)."""
    peak_factor: float | None = Field(default=None, ge=1)
    """Busiest hour's request rate ÷ the mean rate (default 2; or give ``daily_profile``)."""
    daily_profile: list[float] | None = None
    """24 relative hourly volumes (e.g. requests per hour of a typical day); peak factor = max ÷ mean."""
    cached_input_share: Fraction = 0.0
    """Share of prompt tokens an API serves from its prompt cache (a shared system prompt, few-shot exemplars)."""
    p95_latency_s: float | None = Field(default=None, gt=0)
    """Required 95th-percentile end-to-end latency of a request (None: throughput only)."""
    utilization_ceiling: float = Field(default=0.7, gt=0, le=1)
    """Highest share of a replica's capacity used at the peak hour (headroom for queueing and bursts)."""

    @model_validator(mode="after")
    def _one_profile(self) -> Workload:
        if self.peak_factor is not None and self.daily_profile is not None:
            raise ValueError("give peak_factor or daily_profile, not both")
        if self.daily_profile is not None:
            p = self.daily_profile
            if len(p) != 24 or min(p) < 0 or sum(p) <= 0:
                raise ValueError("daily_profile needs 24 hourly values >= 0 with a positive sum")
        return self

    @property
    def peak(self) -> float:
        """Peak-hour rate ÷ mean rate."""
        if self.daily_profile is not None:
            return max(self.daily_profile) / (sum(self.daily_profile) / 24.0)
        return 2.0 if self.peak_factor is None else self.peak_factor

    @property
    def mean_requests_per_second(self) -> float:
        return self.requests_per_month / (HOURS_PER_MONTH * 3600.0)

    @property
    def peak_requests_per_second(self) -> float:
        return self.mean_requests_per_second * self.peak


class _Option(StrictModel):
    name: str = Field(min_length=1)
    quality: Fraction | None = None
    """Share of requests answered correctly (from an eval run); gives cost per correct answer."""
    input_tokens: float | None = Field(default=None, gt=0)
    """This option's prompt tokens per request, when its prompt differs (few-shot exemplars, a system prompt)."""
    output_tokens: float | None = Field(default=None, gt=0)


class ApiOption(_Option):
    """A hosted API billed per token: a row of the price table, or prices given here."""

    kind: Literal["api"] = "api"
    price: str | None = None
    """Row of the price table (default: ``name``)."""
    input_usd_per_m: float | None = Field(default=None, ge=0)
    output_usd_per_m: float | None = Field(default=None, ge=0)
    cached_usd_per_m: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _both_prices(self) -> ApiOption:
        if (self.input_usd_per_m is None) != (self.output_usd_per_m is None):
            raise ValueError("give both input_usd_per_m and output_usd_per_m, or neither (price table)")
        return self


class SelfHostedOption(_Option):
    """A model served on catalog hardware that is rented per hour or bought and amortized."""

    kind: Literal["self_hosted"] = "self_hosted"
    model: str
    """Cost-model catalog name, HF config.json or .gguf path."""
    hardware: str
    """Hardware catalog name or YAML file."""
    precision: str | None = None
    tp: int | None = Field(default=None, ge=1)
    """Devices per replica (default: the fewest, a power of two, that hold the weights and KV cache)."""
    engine: str = "auto"
    """Efficiency factors: auto (the hardware family's engine), roofline (ideal) or a fitted engine."""
    max_batch: int = Field(default=256, ge=1)
    pricing: Literal["rent", "buy"] = "rent"
    price_per_hour: float | None = Field(default=None, ge=0)
    """Rent: dollars per device-hour (default: the catalog's indicative price)."""
    purchase_usd: float | None = Field(default=None, gt=0)
    """Buy: dollars per device, server share included."""
    amortization_years: float = Field(default=3.0, gt=0)
    usd_per_kwh: float = Field(default=0.15, ge=0)
    pue: float = Field(default=1.3, ge=1)
    """Power usage effectiveness of the room (facility power ÷ IT power)."""

    @model_validator(mode="after")
    def _buy_needs_price(self) -> SelfHostedOption:
        if self.pricing == "buy" and self.purchase_usd is None:
            raise ValueError("pricing: buy needs purchase_usd (dollars per device)")
        return self


PlanOption = Annotated[ApiOption | SelfHostedOption, Field(discriminator="kind")]


class PlanSpec(StrictModel):
    """A plan: the workload and the options to price side by side."""

    workload: Workload
    options: list[PlanOption] = Field(min_length=1)
    prices: str | None = None
    """A price table file (same shape as the shipped one) for the ``api`` options."""
    sensitivity: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [0.5, 2.0, 5.0])
    """Factors the API prices are multiplied by in the sensitivity table."""

    @model_validator(mode="after")
    def _unique_names(self) -> PlanSpec:
        names = [o.name for o in self.options]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"option names must be unique; repeated: {', '.join(dup)}")
        return self


def load_plan(path: str | Path) -> PlanSpec:
    """Read a plan file (YAML or JSON); every problem is reported at once with its key path."""
    return load_spec(PlanSpec, path)


@dataclass(frozen=True)
class Measured:
    """What an evaluation measured for one system: mean tokens per request and the share answered correctly."""

    input_tokens: float | None = None
    output_tokens: float | None = None
    quality: float | None = None


def apply_measured(spec: PlanSpec, measured: Mapping[str, Measured]) -> PlanSpec:
    """Options named like a measured system take its quality and token counts (unless the option sets them)."""
    options: list[ApiOption | SelfHostedOption] = []
    for o in spec.options:
        m = measured.get(o.name)
        if m is None:
            options.append(o)
            continue
        update = {
            k: v
            for k, v in (
                ("quality", m.quality),
                ("input_tokens", m.input_tokens),
                ("output_tokens", m.output_tokens),
            )
            if v is not None and getattr(o, k) is None
        }
        options.append(type(o).model_validate({**o.model_dump(), **update}))
    return spec.model_copy(update={"options": options})
