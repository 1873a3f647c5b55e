"""Decode and prefill on the roofline: golden values from shared/notes/cost-model.md and limiting cases."""

from __future__ import annotations

import pytest

from cadre.costmodel import Efficiency, critical_batch, decode_step, load_hardware, load_model, prefill
from cadre.costmodel.moe import expected_distinct_experts
from cadre.errors import CapacityError, ConfigError

H100 = load_hardware("h100-sxm")


def test_llama3_8b_batch1_decode_floor() -> None:
    # notes §6: 15.0 GB of weights read per token (input embedding excluded) → 4.48 ms on H100
    d = decode_step(load_model("llama-3-8b"), H100, precision="bf16", batch=1, context=0)
    assert d.weight_bytes_read / 1e9 == pytest.approx(15.0, rel=0.01)
    assert d.seconds_per_token * 1e3 == pytest.approx(4.48, rel=0.01)
    assert d.bound == "memory"
    assert d.arithmetic_intensity == pytest.approx(1.0, rel=0.01)
    assert d.ridge_point == pytest.approx(295, rel=0.01)


def test_critical_batch_of_dense_model_without_kv_is_ridge_times_bytes_over_two() -> None:
    m = load_model("llama-3-8b")
    # I(B) = 2BP / (P·b) → compute-bound once B ≥ ridge·b/2 (b = bytes per parameter)
    assert critical_batch(m, H100, precision="bf16", context=0) == pytest.approx(295.3, rel=0.01)
    assert critical_batch(m, H100, precision="fp8", context=0) == pytest.approx(591 / 2, rel=0.01)
    # with 4k tokens of context the intensity saturates below the ridge: never compute-bound
    assert critical_batch(m, H100, precision="bf16", context=4096) is None
    big = decode_step(m, H100, precision="bf16", batch=512, context=0)
    assert big.bound == "compute"


def test_kv_traffic_slows_long_context_decode() -> None:
    m = load_model("llama-3-8b")
    short = decode_step(m, H100, precision="bf16", batch=32, context=128)
    long = decode_step(m, H100, precision="bf16", batch=32, context=16_384)
    assert long.kv_cache_bytes == pytest.approx(32 * 16_384 * 131_072)
    assert long.seconds_per_token > 2 * short.seconds_per_token


def test_moe_expert_coverage_grows_with_batch() -> None:
    # notes §4: Mixtral 2.0, 5.5, 7.2 of 8; DeepSeek-V3 8, 57, 163, 222 of 256
    assert [round(expected_distinct_experts(8, 2, b), 1) for b in (1, 4, 8)] == [2.0, 5.5, 7.2]
    assert [round(expected_distinct_experts(256, 8, b)) for b in (1, 8, 32, 64)] == [8, 57, 163, 222]
    mix = load_model("mixtral-8x7b")
    b1 = decode_step(mix, H100, precision="bf16", batch=1, context=0, enforce_memory=False)
    b64 = decode_step(mix, H100, precision="bf16", batch=64, context=0, enforce_memory=False)
    assert b1.weight_bytes_read / 1e9 == pytest.approx(25.5, rel=0.01)
    assert b64.weight_bytes_read == pytest.approx(2 * (mix.total_params() - mix.embedding_params()), rel=0.01)


def test_tensor_parallel_adds_allreduce_and_splits_weights() -> None:
    m = load_model("llama-3-70b")
    with pytest.raises(CapacityError, match="--tp 2"):
        decode_step(m, H100, precision="bf16")
    tp2 = decode_step(m, H100, precision="bf16", tp=2)
    tp8 = decode_step(m, H100, precision="bf16", tp=8)
    assert tp8.memory_seconds == pytest.approx(tp2.memory_seconds / 4)
    # 160 all-reduces per token, each at least the 8 us latency
    assert tp8.comm_seconds >= 160 * 8e-6
    assert tp8.seconds_per_token < tp2.seconds_per_token


def test_batch_that_does_not_fit_names_the_field() -> None:
    with pytest.raises(CapacityError, match=r"^batch: ") as err:
        decode_step(load_model("llama-3-8b"), H100, batch=4096, context=8192)
    assert "\n" not in str(err.value)
    for kw in ({"batch": 0}, {"tp": -1}, {"context": -3}):
        with pytest.raises(ConfigError):
            decode_step(load_model("llama-3-8b"), H100, **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="prompt_tokens"):
        prefill(load_model("llama-3-8b"), H100, prompt_tokens=0)


def test_prefill_is_compute_bound_for_long_prompts() -> None:
    m = load_model("llama-3-8b")
    short = prefill(m, H100, prompt_tokens=16, precision="bf16")
    long = prefill(m, H100, prompt_tokens=4096, precision="bf16")
    assert short.bound == "memory" and long.bound == "compute"
    # 2·P·S FLOPs plus causal attention
    assert long.flops > 2 * 7.5e9 * 4096
    assert long.seconds > short.seconds


def test_efficiency_and_overheads_slow_the_step() -> None:
    m = load_model("llama-3-8b")
    ideal = decode_step(m, H100, precision="bf16", context=0)
    real = decode_step(m, H100, precision="bf16", context=0, efficiency=Efficiency(0.5, 0.5, 1e-5, 0))
    assert real.seconds_per_token == pytest.approx(2 * ideal.seconds_per_token + 32 * 1e-5)
    with pytest.raises(ConfigError):
        Efficiency(bandwidth=0)
