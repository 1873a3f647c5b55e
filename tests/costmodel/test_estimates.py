"""The per-question estimates behind `cadre cost`: each composes the formulas it names."""

from __future__ import annotations

import pytest

from cadre.costmodel import (
    USABLE_MEMORY_FRACTION,
    Efficiency,
    audit,
    audit_summary,
    cost_per_million_tokens,
    decode_cost,
    decode_step,
    devices_needed,
    efficiency_for_engine,
    hardware_catalog,
    hardware_names,
    kv_cache_size,
    load_hardware,
    load_model,
    memory_fit,
    model_catalog,
    model_names,
    prefill_cost,
    roofline_chart,
    speculative_estimate,
    speculative_speedup,
    training_cost,
)
from cadre.errors import ConfigError, NotFoundError


def test_decode_cost_prices_the_decode_step() -> None:
    cost = decode_cost("llama-3-8b", "h100-sxm", precision="fp8", batch=8, price_per_hour=2.0)
    step = decode_step(load_model("llama-3-8b"), load_hardware("h100-sxm"), precision="fp8", batch=8)
    assert cost.step == step and cost.price_per_hour == 2.0
    hw = load_hardware("h100-sxm", price_per_hour=2.0)
    assert cost.usd_per_million_tokens == pytest.approx(cost_per_million_tokens(step.tokens_per_second, hw))
    assert cost.to_json()["engine"] == "roofline" and cost.to_json()["bound"] == step.bound


def test_engines() -> None:
    assert efficiency_for_engine("roofline") == Efficiency() == efficiency_for_engine("ideal")
    assert efficiency_for_engine("vllm").bandwidth < 1
    with pytest.raises(NotFoundError, match="did you mean"):
        efficiency_for_engine("vlm")


def test_prefill_cost_throughput() -> None:
    cost = prefill_cost("llama-3-8b", "h100-sxm", prompt_tokens=2048, batch=2)
    assert cost.prompt_tokens_per_second == pytest.approx(2 * 2048 / cost.prefill.seconds)
    assert set(cost.to_json()) == set(cost.prefill.__dict__) | {"engine"}


def test_kv_cache_size_and_paper_formula() -> None:
    size = kv_cache_size("llama-2-70b", context=1000, batch=2)
    assert size.bytes_per_token == 327_680 and size.paper_mha_bytes_per_token == 4 * 80 * 8192
    assert size.kv_cache_bytes == 2 * 1000 * 327_680


def test_memory_fit_uses_the_usable_fraction() -> None:
    fit = memory_fit("llama-3-70b", "h100-sxm")
    assert fit.devices_needed == devices_needed(fit.memory_needed_bytes, fit.device_memory_bytes) == 2
    per_seq = fit.kv_bytes  # batch 1
    expected = int((USABLE_MEMORY_FRACTION * fit.device_memory_bytes - fit.weight_bytes) // per_seq)
    assert fit.max_batch_on_one_device == max(expected, 0)
    with pytest.raises(ConfigError, match="context must be >= 1"):
        memory_fit("llama-3-8b", "h100-sxm", context=0)


def test_roofline_chart_bounds() -> None:
    chart = roofline_chart("h200", ["llama-3-8b"], batches=(1, 1024))
    bounds = [chart.bound(p) for p in chart.workloads[0].points]
    assert bounds[0] == "memory" and chart.precision == "fp8" and chart.written == []


def test_training_cost_chinchilla_and_errors() -> None:
    tc = training_cost(compute=2e25, mfu=0.3, gpus=1000)
    assert tc.flops == pytest.approx(2e25) and tc.gpu_hours == pytest.approx(tc.gpu_seconds / 3600)
    assert tc.wall_days == pytest.approx(tc.gpu_seconds / 1000 / 86400)
    with pytest.raises(ConfigError, match="--compute"):
        training_cost(params=7e9)
    with pytest.raises(ConfigError, match="gpus"):
        training_cost(params=7e9, tokens=1e12, gpus=0)


def test_speculative_estimate() -> None:
    est = speculative_estimate("llama-3-70b", "llama-3-8b", "h100-sxm", alpha=0.8, gamma=4)
    assert est.speedup == pytest.approx(speculative_speedup(0.8, 4, est.cost_ratio))
    assert set(est.to_json()) == {"cost_ratio", "speedup", "paper_formula_speedup", "alpha", "gamma"}


def test_catalogs() -> None:
    assert [h.name for h in hardware_catalog()] == [load_hardware(n).name for n in hardware_names()]
    entries = model_catalog()
    assert [e.arch.name for e in entries] == [load_model(n).name for n in model_names()]
    assert {"name", "total_params", "kv_bytes_per_token"} <= set(entries[0].to_json())


def test_front_functions_are_not_shadowed_by_their_modules() -> None:
    import cadre.costmodel.paper_audit  # noqa: F401  (loading the module must not rebind the front's name)

    claims = audit()
    assert audit_summary(claims)["holds"] > 0 and "computed_value" in claims[0].to_json()


def test_engine_auto_follows_the_hardware_family_and_reports_its_error() -> None:
    from cadre.costmodel import engine_for_hardware, load_hardware, resolve_engine

    assert engine_for_hardware(load_hardware("m2-ultra")) == "llama.cpp-metal"
    assert engine_for_hardware(load_hardware("rtx-4090")) == "llama.cpp-cuda"
    assert engine_for_hardware(load_hardware("h100-sxm")) == "trt-llm"
    assert engine_for_hardware(load_hardware("l4")) == "trt-llm"
    assert engine_for_hardware(load_hardware("mi300x")) is None
    c = resolve_engine("auto", load_hardware("rtx-4090"))
    assert c.engine == "llama.cpp-cuda" and not c.ideal and c.validation_points > 0
    assert c.loso_median_abs_pct_error is not None and "out of sample" in c.label
    cpu = resolve_engine("auto", load_hardware("cpu-epyc-32c"))
    assert cpu.ideal and "no published measurements" in cpu.reason
    assert resolve_engine("roofline", load_hardware("l4")).ideal


def test_decode_auto_is_slower_than_the_ideal_bound() -> None:
    ideal = decode_cost("llama-3-8b", "rtx-4090", precision="q4_k_m", engine="roofline")
    auto = decode_cost("llama-3-8b", "rtx-4090", precision="q4_k_m", engine="auto")
    assert auto.step.tokens_per_second < ideal.step.tokens_per_second
    j = auto.to_json()
    assert j["engine"] == "llama.cpp-cuda" and j["ideal_bound"] is False
    assert j["engine_loso_median_abs_pct_error"] > 0
    assert ideal.to_json()["ideal_bound"] is True
