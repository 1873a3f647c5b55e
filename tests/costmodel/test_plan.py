"""`cadre cost plan`'s arithmetic against hand-computed values, its capacity rule, and its input errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cadre.costmodel import (
    ApiPrice,
    Measured,
    OptionPlan,
    PlanSpec,
    api_request_cost,
    apply_measured,
    cost_at_volume,
    decode_step,
    load_api_prices,
    load_hardware,
    load_model,
    load_plan,
    plan_costs,
    prefill,
)
from cadre.costmodel.plan import _crossings
from cadre.errors import ConfigError, NotFoundError

WORKLOAD = {
    "requests_per_month": 2_000_000,
    "input_tokens": 1000,
    "output_tokens": 200,
    "peak_factor": 3,
    "p95_latency_s": 5,
    "utilization_ceiling": 0.7,
}


def _hosted(name: str, model: str, hardware: str, **kw: object) -> dict:
    """A self-hosted option at the ideal roofline (so the figures do not move when the fit does)."""
    return {
        "kind": "self_hosted",
        "name": name,
        "model": model,
        "hardware": hardware,
        "engine": "roofline",
        **kw,
    }


def _spec(*options: dict, **workload: float) -> PlanSpec:
    return PlanSpec.model_validate({"workload": {**WORKLOAD, **workload}, "options": list(options)})


def test_price_table_rows_are_dated_and_sourced() -> None:
    table = load_api_prices()
    assert len(table.models) >= 10
    for name, p in table.models.items():
        assert p.as_of and p.source, name
        assert p.cached is None or p.cached <= p.input, name
    # the hand-computed examples below rely on this row
    assert table.models["gpt-4o-mini"] == ApiPrice(
        input=0.15,
        output=0.60,
        cached=0.075,
        as_of=table.models["gpt-4o-mini"].as_of,
        source=table.models["gpt-4o-mini"].source,
    )


def test_api_bill_by_hand() -> None:
    price = ApiPrice(input=0.15, output=0.60, cached=0.075)
    # 500 fresh × 0.15 + 500 cached × 0.075 + 200 × 0.60 = 75 + 37.5 + 120 = 232.5 per 1e6
    assert api_request_cost(1000, 200, price, cached_share=0.5) == pytest.approx(232.5e-6)
    with pytest.raises(ConfigError, match="cached_share"):
        api_request_cost(1000, 200, price, cached_share=1.5)


def test_api_option_monthly_per_1k_and_per_correct() -> None:
    plan = plan_costs(_spec({"kind": "api", "name": "gpt-4o-mini", "quality": 0.9}, cached_input_share=0.5))
    o = plan.option("gpt-4o-mini")
    assert o.monthly_usd == pytest.approx(2_000_000 * 232.5e-6)  # $465
    assert o.usd_per_1k_requests == pytest.approx(0.2325)
    assert o.usd_per_1k_correct == pytest.approx(0.2325 / 0.9)
    assert o.meets_latency is None and o.devices == 0


def test_given_prices_without_cached_bill_cached_tokens_at_input() -> None:
    plan = plan_costs(
        _spec(
            {"kind": "api", "name": "mine", "input_usd_per_m": 1.0, "output_usd_per_m": 2.0},
            cached_input_share=0.5,
        )
    )
    o = plan.option("mine")
    assert o.usd_per_1k_requests == pytest.approx((1000 * 1.0 + 200 * 2.0) / 1e6 * 1000)  # $1.40
    assert any("cached tokens billed at the input price" in n for n in o.notes)


def test_workload_rates_and_profile() -> None:
    spec = _spec({"kind": "api", "name": "gpt-4o-mini"})
    w = spec.workload
    assert w.mean_requests_per_second == pytest.approx(2_000_000 / (730 * 3600))  # 0.761
    assert w.peak_requests_per_second == pytest.approx(3 * 2_000_000 / (730 * 3600))
    prof = _spec({"kind": "api", "name": "x"}, peak_factor=None).workload.model_copy(
        update={"daily_profile": [1.0] * 12 + [3.0] * 12}
    )
    assert prof.peak == pytest.approx(1.5)  # max 3 ÷ mean 2


def test_rented_self_hosted_replicas_devices_and_money_by_hand() -> None:
    plan = plan_costs(
        _spec(
            _hosted("8b-l4", "llama-3-8b", "l4", precision="int8"),
            p95_latency_s=10,
        )
    )
    o = plan.option("8b-l4")
    assert o.tp == 1 and o.engine == "roofline"
    # the capacity rule: the batch's latency is prefill(B) + 200 decode steps at B, within p95 10 s ...
    arch, hw = load_model("llama-3-8b"), load_hardware("l4")
    kw = {"precision": "int8", "enforce_memory": False}

    def latency(b: int) -> float:
        pre = prefill(arch, hw, prompt_tokens=1000, batch=b, **kw)
        return pre.seconds + 200 * decode_step(arch, hw, batch=b, context=1100, **kw).seconds_per_token

    assert o.latency_s == pytest.approx(latency(o.batch)) and o.latency_s <= 10
    assert latency(2 * o.batch) > 10 or o.batch * 2 > 256  # ... and the next power of two is not
    # replicas = ceil(peak rps ÷ (0.7 × B ÷ latency)); rent = devices × $0.70 × 730 h
    rps = o.batch / o.latency_s
    assert o.requests_per_second_per_replica == pytest.approx(rps)
    peak = 3 * 2_000_000 / (730 * 3600)
    assert o.replicas == math.ceil(peak / (0.7 * rps))
    assert o.monthly_usd == pytest.approx(o.devices * 0.70 * 730)
    assert o.usd_per_1k_requests == pytest.approx(o.monthly_usd / 2000)
    assert o.mean_utilization == pytest.approx(peak / 3 / (o.replicas * rps))


def test_bought_hardware_amortized_plus_power_by_hand() -> None:
    plan = plan_costs(
        _spec(
            _hosted(
                "70b",
                "llama-3-70b",
                "h100-sxm",
                precision="fp8",
                pricing="buy",
                purchase_usd=30000,
                amortization_years=3,
                pue=1.3,
                usd_per_kwh=0.15,
            )
        )
    )
    o = plan.option("70b")
    # $30,000 / 36 months + 0.7 kW × 1.3 × 730 h × $0.15 = 833.33 + 99.645
    assert o.usd_per_device_month == pytest.approx(30000 / 36 + 0.7 * 1.3 * 730 * 0.15)
    assert o.usd_per_device_month == pytest.approx(932.98, abs=0.01)
    assert o.monthly_usd == pytest.approx(o.devices * o.usd_per_device_month)
    assert o.tp == 1  # 70B at fp8 (70.6 GB) fits one 80 GiB H100 at 90%


def test_latency_target_out_of_reach_is_flagged_not_chosen() -> None:
    plan = plan_costs(
        _spec(
            {"kind": "api", "name": "gpt-4o-mini"},
            _hosted("cpu", "llama-3-8b", "local"),
            p95_latency_s=0.5,
        )
    )
    cpu = plan.option("cpu")
    assert cpu.meets_latency is False and cpu.batch == 1
    assert any("does not meet p95" in n for n in cpu.notes)
    assert plan.cheapest == "gpt-4o-mini"


def _opt(
    name: str, *, per_request: float = 0.0, per_device: float = 0.0, per_replica: float | None = None
) -> OptionPlan:
    return OptionPlan(
        name=name,
        kind="api" if per_replica is None else "self_hosted",
        summary="",
        input_tokens=1,
        output_tokens=1,
        monthly_usd=0,
        usd_per_1k_requests=0,
        quality=None,
        usd_per_1k_correct=None,
        meets_latency=None,
        latency_s=None,
        devices=1,
        replicas=1,
        tp=1,
        batch=1,
        requests_per_second_per_replica=None,
        mean_utilization=None,
        engine=None,
        engine_label=None,
        usd_per_device_month=per_device,
        usd_per_request=per_request,
        requests_per_replica_month=per_replica,
    )


def test_break_even_by_hand() -> None:
    api = _opt("api", per_request=0.001)  # $1 per 1k requests
    gpu = _opt("gpu", per_device=511.0, per_replica=1_000_000)  # $511/month, 1M requests/month per replica
    assert cost_at_volume(gpu, 1) == 511 and cost_at_volume(gpu, 1_000_001) == 1022
    assert cost_at_volume(api, 2_000_000) == pytest.approx(2000)
    assert cost_at_volume(api, 2_000_000, api_factor=5) == pytest.approx(10000)
    # API cheaper below 511k; the GPU until its first replica is full at 1M (API $1,000 < 2 × $511);
    # the GPU again from 1.022M on (and beyond: 2M → $1,533 vs $2,000)
    assert _crossings(api, gpu, 2_500_000) == pytest.approx([511_000, 1_000_000, 1_022_000])
    never = _opt("dear", per_device=5000.0, per_replica=1_000_000)  # $5 per 1k even when full
    assert _crossings(api, never, 100_000_000) == []


def test_sensitivity_and_break_even_in_the_plan() -> None:
    plan = plan_costs(
        _spec(
            {"kind": "api", "name": "gpt-4o-mini", "quality": 0.9},
            _hosted("8b-l4", "llama-3-8b", "l4", precision="int8", quality=0.95),
        )
    )
    api, l4 = plan.option("gpt-4o-mini"), plan.option("8b-l4")
    assert [r.factor for r in plan.sensitivity] == [0.5, 2.0, 5.0]
    for r in plan.sensitivity:
        assert r.monthly_usd["gpt-4o-mini"] == pytest.approx(api.monthly_usd * r.factor)
        assert r.monthly_usd["8b-l4"] == l4.monthly_usd
        assert r.cheapest == min(r.monthly_usd, key=r.monthly_usd.__getitem__)
    (be,) = plan.break_evens
    assert be.cheaper_at_plan == min((api, l4), key=lambda o: o.monthly_usd).name
    if be.crossings:  # the first crossing is where one L4 replica's rent equals the API bill
        assert be.crossings[0] == pytest.approx(
            l4.usd_per_device_month * l4.tp / api.usd_per_request, rel=1e-6
        )


def test_measured_figures_fill_options_by_name() -> None:
    spec = apply_measured(
        _spec({"kind": "api", "name": "generalist"}, {"kind": "api", "name": "other", "quality": 0.5}),
        {
            "generalist": Measured(input_tokens=321, output_tokens=12, quality=0.8),
            "other": Measured(quality=0.1),
        },
    )
    g, other = spec.options
    assert (g.input_tokens, g.output_tokens, g.quality) == (321, 12, 0.8)
    assert other.quality == 0.5  # the option's own value wins


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (
            {"workload": {**WORKLOAD, "daily_profile": [1] * 24}, "options": [{"kind": "api", "name": "a"}]},
            "not both",
        ),
        (
            {
                "workload": {**WORKLOAD, "peak_factor": None, "daily_profile": [1] * 5},
                "options": [{"kind": "api", "name": "a"}],
            },
            "24 hourly",
        ),
        (
            {
                "workload": WORKLOAD,
                "options": [
                    {
                        "kind": "self_hosted",
                        "name": "x",
                        "model": "llama-3-8b",
                        "hardware": "l4",
                        "pricing": "buy",
                    }
                ],
            },
            "purchase_usd",
        ),
        ({"workload": {**WORKLOAD, "requets": 1}, "options": [{"kind": "api", "name": "a"}]}, "unknown key"),
        (
            {"workload": WORKLOAD, "options": [{"kind": "api", "name": "a"}, {"kind": "api", "name": "a"}]},
            "unique",
        ),
        ({"workload": WORKLOAD, "options": [{"kind": "gpu", "name": "a"}]}, "kind"),
    ],
)
def test_bad_plans_name_the_problem(data: dict, needle: str, tmp_path: Path) -> None:
    import yaml

    f = tmp_path / "plan.yaml"
    f.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        load_plan(f)


def test_unknown_price_row_suggests_close_names() -> None:
    with pytest.raises(NotFoundError, match="gpt-4o-mini"):
        plan_costs(_spec({"kind": "api", "name": "gpt-4o-mni"}))


def test_chart_is_written(tmp_path: Path) -> None:
    plan = plan_costs(
        _spec(
            {"kind": "api", "name": "gpt-4o-mini"},
            _hosted("8b-l4", "llama-3-8b", "l4"),
        ),
        chart=tmp_path / "plan.png",
    )
    assert plan.chart and Path(plan.chart).stat().st_size > 10_000
