"""The smaller formula modules: quantization bytes, speculative decoding, training, TCO, parallelism."""

from __future__ import annotations

import pytest

from cadre.costmodel import cost_per_million_tokens, cost_per_request, load_hardware, load_model, power_kw
from cadre.costmodel.parallel import allreduce_seconds, devices_needed, paper_tp_comm_seconds
from cadre.costmodel.quant import bits_per_param, compute_precision, normalize_precision
from cadre.costmodel.speculative import expected_tokens_per_step, paper_speedup, speculative_speedup
from cadre.costmodel.training import (
    chinchilla_optimal,
    implied_mfu,
    lora_params,
    lora_trainable_params,
    training_flops,
    training_gpu_seconds,
)
from cadre.errors import ConfigError, NotFoundError


def test_quantized_formats_carry_their_scales() -> None:
    assert bits_per_param("q4_0") == 4.5
    assert bits_per_param("Q4_1") == 5.0
    assert bits_per_param("q8_0") == 8.5
    assert bits_per_param("q4_k") == 4.5
    assert bits_per_param("nf4") == pytest.approx(4.127, abs=1e-3)
    assert bits_per_param("bfloat16") == 16
    assert compute_precision("q4_k_m") == "fp16" and compute_precision("fp8") == "fp8"
    with pytest.raises(NotFoundError, match="fp8"):
        normalize_precision("fp9")


def test_leviathan_speculative_decoding() -> None:
    assert expected_tokens_per_step(0.8, 4) == pytest.approx((1 - 0.8**5) / 0.2)
    assert speculative_speedup(0.8, 4, 0.0) == pytest.approx(3.3616)
    assert speculative_speedup(0.8, 4, 0.05) == pytest.approx(3.3616 / 1.2)
    # the paper's formula cannot exceed 1/gamma when gamma < 1
    assert paper_speedup(1.0, 0.7) == pytest.approx(1 / 0.7)
    assert paper_speedup(0.0, 0.7) == 1.0
    with pytest.raises(ConfigError):
        expected_tokens_per_step(1.0, 4)


def test_training_compute() -> None:
    assert training_flops(7e9, 1e12) == 4.2e22
    s = training_gpu_seconds(2e25, 989e12, 0.3)
    assert s == pytest.approx(6.74e10, rel=1e-3)
    n, d = chinchilla_optimal(5.76e23)  # Chinchilla itself: 70B params, 1.4T tokens
    assert n / 1e9 == pytest.approx(69.3, rel=0.01) and d == pytest.approx(20 * n)
    assert implied_mfu(1.3e22, 2000 * 86400, 312e12) == pytest.approx(0.241, rel=1e-2)
    with pytest.raises(ConfigError, match="mfu"):
        training_gpu_seconds(1e20, 1e15, 0)


def test_lora_parameter_counts() -> None:
    assert lora_params(4096, 4096, 8) == 65_536
    m = load_model("llama-3-8b")
    # q_proj 4096→4096 and v_proj 4096→1024 at r=8, 32 layers
    assert lora_trainable_params(m, 8) == 32 * 8 * ((4096 + 4096) + (4096 + 1024))
    with pytest.raises(NotFoundError, match="q_proj"):
        lora_trainable_params(m, 8, ("q_prj",))


def test_cost_per_request_and_per_million_tokens() -> None:
    h100 = load_hardware("h100-sxm")
    assert cost_per_request(3600, h100) == 3.0
    assert cost_per_request(3600, h100, concurrency=4) == 0.75
    assert cost_per_request(71, h100, n_devices=16) == pytest.approx(0.9467, rel=1e-3)
    assert cost_per_million_tokens(14, h100) == pytest.approx(59.52, rel=1e-3)
    assert cost_per_request(10, load_hardware("local")) >= 0
    for bad in ({"seconds": -1.0}, {"concurrency": 0}):
        with pytest.raises(ConfigError):
            cost_per_request(**{"seconds": 1.0, "hardware": h100, **bad})  # type: ignore[arg-type]


def test_power_and_parallelism() -> None:
    assert power_kw(16, 700, pue=1.4) == pytest.approx(15.68)
    assert allreduce_seconds(1e6, 1, 450e9, 8e-6) == 0.0
    assert allreduce_seconds(1e6, 8, 450e9, 8e-6) == pytest.approx(8e-6 + 2 * 7 / 8 * 1e6 / 450e9)
    assert paper_tp_comm_seconds(80, 8192) == pytest.approx(4 * 80 * 8192 / 900e9)
    assert devices_needed(141e9, 80e9) == 2
    with pytest.raises(ConfigError, match="interconnect"):
        allreduce_seconds(1e6, 2, 0.0, 1e-5)
