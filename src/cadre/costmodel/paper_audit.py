"""Re-derive every numeric claim of the paper ("The End of the One-Model Era") from its stated inputs.

Each claim is recomputed with the formulas of this package, using the paper's own assumptions (3 TB/s,
989 TFLOP/s, FP8 weights, $3 per GPU-hour) unless the claim is about those assumptions. A claim holds when the
recomputed value is within 10% of the paper's (or satisfies its inequality / range); ``note`` says why not,
and what a more faithful model gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cadre.costmodel.arch import load_model
from cadre.costmodel.hardware import load_hardware
from cadre.costmodel.kv import kv_bytes_per_token, paper_kv_bytes_per_token
from cadre.costmodel.moe import expected_distinct_experts, expert_fraction_active
from cadre.costmodel.parallel import devices_needed
from cadre.costmodel.quant import bytes_per_param
from cadre.costmodel.roofline import decode_step
from cadre.costmodel.speculative import paper_speedup, speculative_speedup
from cadre.costmodel.tco import energy_cost_per_hour, energy_cost_per_request, power_kw
from cadre.costmodel.training import (
    chinchilla_optimal,
    compute_multiplier,
    implied_mfu,
    lora_params,
    training_flops,
    training_gpu_seconds,
)

__all__ = ["Claim", "audit", "audit_summary"]

TOLERANCE = 0.10
Compare = Literal["approx", "greater", "range"]

# The paper's stated inputs
N_ACTIVE = 220e9  # GPT-4 active parameters (SemiAnalysis estimate, paper ref [11])
BW_PAPER = 3e12  # "approximately 3 TB/s" for H100
PEAK_PAPER = 989e12  # H100 dense BF16 tensor FLOP/s (the paper calls it FP8)
PRICE = 3.0  # $ per GPU-hour
GPT4_L, GPT4_D = 120, 16384
SECONDS_PER_YEAR = 365 * 24 * 3600


@dataclass
class Claim:
    """One audited claim. ``holds`` is None when the paper gives no number to compare (the value is reported)."""

    id: str
    claim: str
    paper_value: float | None
    computed_value: float
    unit: str
    holds: bool | None
    note: str = ""
    compare: Compare = "approx"
    paper_range: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """The claim as reported: id, text, paper and computed values, unit, verdict and note."""
        return {
            "id": self.id,
            "claim": self.claim,
            "paper_value": self.paper_value,
            "computed_value": self.computed_value,
            "unit": self.unit,
            "holds": self.holds,
            "note": self.note,
        }


def _holds(c: Claim) -> Claim:
    if c.holds is not None:
        return c
    if c.compare == "greater":
        c.holds = c.computed_value > (c.paper_value or 0.0)
    elif c.compare == "range" and c.paper_range:
        lo, hi = c.paper_range
        c.holds = lo * (1 - TOLERANCE) <= c.computed_value <= hi * (1 + TOLERANCE)
    elif c.paper_value is not None:
        c.holds = abs(c.computed_value - c.paper_value) <= TOLERANCE * abs(c.paper_value)
    return c


def audit() -> list[Claim]:
    """Every claim C01..C35 (and a few extra checks, ids X..), recomputed."""
    h100 = load_hardware("h100-sxm")
    gpt4 = load_model("gpt4-est")
    t_tok = N_ACTIVE * bytes_per_param("fp8") / BW_PAPER  # t_mem = N/B (roofline, memory side)
    tps = 1.0 / t_tok
    gpt3 = load_model("gpt3-175b")
    ridge = PEAK_PAPER / BW_PAPER
    intensity = 2 * N_ACTIVE / (N_ACTIVE * bytes_per_param("fp8"))  # I = 2N / (N + M_kv), M_kv → 0
    kv_tok = paper_kv_bytes_per_token(GPT4_L, GPT4_D)
    real_gpt4 = decode_step(gpt4, h100, precision="fp8", batch=165, context=1000, tp=32, enforce_memory=False)
    claims: list[Claim] = []
    add = claims.append

    add(
        Claim(
            "C01",
            "decode time per token, 220e9 active params at FP8 over 3 TB/s",
            0.073,
            t_tok,
            "s",
            None,
            f"with the datasheet 3.35 TB/s: {N_ACTIVE / h100.memory_bandwidth_bytes_per_s:.4f} s",
        )
    )
    add(
        Claim(
            "C02",
            "single-user decode speed of GPT-4 (memory bound)",
            14.0,
            tps,
            "tokens/s",
            None,
            "a lower bound on time only if the whole model sits on one device's bandwidth",
        )
    )
    g3 = gpt3.active_params() * bytes_per_param("fp8") / BW_PAPER
    add(
        Claim(
            "C03",
            "dense GPT-3 175B bound",
            17.0,
            1.0 / g3,
            "tokens/s",
            None,
            f"GPT-3 has {gpt3.total_params() / 1e9:.1f}B parameters (96 layers, d=12288), FP8, 3 TB/s",
        )
    )
    add(
        Claim(
            "C04",
            "H100 ridge point 989e12 / 3e12",
            330.0,
            ridge,
            "FLOP/byte",
            None,
            f"datasheet: BF16 989.4 TFLOP/s / 3.35 TB/s = {h100.ridge_point('bf16'):.0f}; with FP8 weights "
            f"the FP8 peak applies: {h100.ridge_point('fp8'):.0f}; measured (Vidur) "
            f"{h100.ridge_point('bf16', measured=True):.0f}",
        )
    )
    add(
        Claim(
            "C05",
            "decode arithmetic intensity at GPT-4 scale (batch 1, negligible KV)",
            2.0,
            intensity,
            "FLOP/byte",
            None,
            "2 FLOPs per parameter over 1 byte per FP8 parameter; 1.0 at FP16",
        )
    )
    crit_real = decode_step(gpt4, h100, precision="fp8", batch=1, context=1000, tp=32, enforce_memory=False)
    add(
        Claim(
            "C06",
            "compute-bound above R/I concurrent requests",
            165.0,
            ridge / intensity,
            "requests",
            None,
            f"R/I ignores the KV cache each extra request adds: with GPT-4's MHA cache at 1,000 tokens the "
            f"intensity saturates at {2 * N_ACTIVE / (1000 * kv_tok):.0f} FLOP/byte, so decode never becomes "
            f"compute bound (model: critical batch "
            f"{'none' if crit_real.critical_batch is None else f'{crit_real.critical_batch:.0f}'}; at batch 165 "
            f"intensity {real_gpt4.arithmetic_intensity:.0f})",
        )
    )
    add(
        Claim(
            "C07",
            "KV cache 4·L·d per token at d=16384, L=120",
            7.9e6,
            kv_tok,
            "bytes/token",
            None,
            f"equals the catalog model's MHA cache: {kv_bytes_per_token(gpt4):.3e} bytes/token",
        )
    )
    add(
        Claim(
            "C08",
            "KV cache of a 128,000-token context",
            1e9,
            kv_tok * 128_000,
            "bytes",
            None,
            "7.9e6 bytes/token x 128,000 tokens = 1.0e12 bytes: about 1 TB, not 1 GB (off by 1000x)",
        )
    )
    add(
        Claim(
            "C09",
            "KV cache of a 1,000,000-token context",
            8e9,
            kv_tok * 1_000_000,
            "bytes",
            None,
            "7.9e6 x 1e6 = 7.9e12 bytes: about 8 TB, not 8 GB (off by 1000x)",
        )
    )
    l2 = load_model("llama-2-70b")
    add(
        Claim(
            "C10",
            "GQA with 8 KV heads shrinks the KV cache 8x (LLaMA-2-70B: 64 heads, 8 KV heads)",
            8.0,
            l2.num_heads / l2.num_kv_heads,
            "x",
            None,
            f"LLaMA-2-70B caches {kv_bytes_per_token(l2):,.0f} bytes/token vs "
            f"{4 * l2.num_layers * l2.hidden_size:,.0f} with MHA",
        )
    )
    lo, mid, hi = (speculative_speedup(a, 4, 0.05) for a in (0.7, 0.8, 0.9))
    add(
        Claim(
            "C11",
            "draft acceptance 0.7-0.9 gives 2-3x latency improvement (Leviathan et al.)",
            2.5,
            mid,
            "x",
            None,
            f"Leviathan et al. with gamma=4 draft tokens, draft/target cost c=0.05: "
            f"{lo:.2f}x at alpha=0.7 ... {hi:.2f}x at alpha=0.9",
            compare="range",
            paper_range=(2.0, 3.0),
        )
    )
    p_lo, p_hi = paper_speedup(1.0, 0.9), paper_speedup(1.0, 0.7)
    add(
        Claim(
            "C11b",
            "the paper's speedup formula 1/(1 - beta + beta*gamma) with gamma = acceptance 0.7-0.9",
            2.5,
            paper_speedup(1.0, 0.8),
            "x",
            None,
            f"not the standard form: with gamma < 1 it is at most 1/gamma ({p_lo:.2f}-{p_hi:.2f}x at beta=1), "
            f"so it cannot give 2-3x",
            compare="range",
            paper_range=(2.0, 3.0),
        )
    )
    t_req = 1000 / tps
    add(
        Claim(
            "C12",
            "1,000 tokens at the memory bound",
            71.0,
            t_req,
            "s",
            None,
            "paper divides by the rounded 14 tokens/s",
        )
    )
    cost_req = 16 * PRICE * 71 / 3600
    tp16 = 16 * h100.memory_bandwidth_bytes_per_s
    add(
        Claim(
            "C13",
            "16 H100 at $3/h for that request",
            0.95,
            cost_req,
            "$",
            None,
            f"arithmetic holds, but the premise does not: 16 GPUs holding the model stream the weights in "
            f"parallel (16 x 3.35 TB/s), so 1,000 tokens take {1000 * N_ACTIVE / tp16:.1f} s, costing "
            f"${16 * PRICE * 1000 * N_ACTIVE / tp16 / 3600:.3f}; and 1.8T FP8 parameters need "
            f"{devices_needed(1.8e12, h100.memory_bytes)} H100s just for weights",
        )
    )
    kw = power_kw(16, 700, pue=1.4)
    add(Claim("C15", "16 x 700 W x PUE 1.4", 15.7, kw, "kW", None, "TDP is a cap; real draw is lower"))
    add(Claim("C16", "energy cost per hour at $0.08/kWh", 1.26, energy_cost_per_hour(kw, 0.08), "$/h", None))
    e_req = energy_cost_per_request(kw, 0.08, 71)
    add(
        Claim(
            "C17",
            "energy adds about $0.09 per request",
            0.09,
            e_req,
            "$",
            None,
            f"$1.25/h x 71 s / 3600 = ${e_req:.3f}, 3.6x less than stated",
        )
    )
    gpu_s = training_gpu_seconds(2e25, PEAK_PAPER, 0.3)
    add(Claim("C18", "2e25 FLOPs at 30% of 989 TFLOP/s", 6.7e10, gpu_s, "GPU-seconds", None))
    add(Claim("C19", "that is about 2,100 H100-years", 2100.0, gpu_s / SECONDS_PER_YEAR, "GPU-years", None))
    add(
        Claim(
            "C20",
            "compute cost at $3/GPU-hour exceeds $55 million",
            55e6,
            gpu_s / 3600 * PRICE,
            "$",
            None,
            compare="greater",
        )
    )
    n_opt_flops = training_flops(1.8e12, 20 * 1.8e12)
    add(
        Claim(
            "X01",
            "a Chinchilla-optimal run for 1.8T parameters needs about 2e25 FLOPs",
            2e25,
            n_opt_flops,
            "FLOPs",
            None,
            f"6·N·D with D = 20·N: 3.9e26, 19x more; 2e25 FLOPs is Chinchilla-optimal for "
            f"N = {chinchilla_optimal(2e25)[0] / 1e9:.0f}B parameters",
        )
    )
    t7 = 7e9 * bytes_per_param("fp8") / BW_PAPER
    add(
        Claim(
            "C21",
            "7B specialist memory time per token",
            0.002,
            t7,
            "s",
            None,
            f"7e9 bytes / 3e12 B/s = {t7:.4f} s: rounded down by 14% (2.1 ms with the datasheet 3.35 TB/s)",
        )
    )
    spec = load_model("llama-3-8b")

    def gpu_s_per_token(batch: int) -> float:
        g = decode_step(gpt4, h100, precision="fp8", batch=batch, context=1000, tp=32, enforce_memory=False)
        s = decode_step(spec, h100, precision="fp8", batch=batch, context=1000, enforce_memory=False)
        return (32 * g.seconds_per_token) / s.seconds_per_token

    add(
        Claim(
            "C22",
            "the 7B specialist is about 35x faster than the generalist",
            35.0,
            N_ACTIVE / 7e9,
            "x",
            None,
            f"bytes ratio 220/7 = 31.4x (the paper's 35x divides rounded times 0.073/0.002). GPU-seconds per "
            f"token at 1,000 tokens of context, GPT-4 (FP8, 32 H100) vs Llama-3-8B (FP8, 1 H100): "
            f"{gpu_s_per_token(1):.0f}x at batch 1, {gpu_s_per_token(64):.0f}x at batch 64 (the MHA KV cache "
            f"of the generalist grows the gap)",
        )
    )
    usd_per_m = PRICE / 3600 / 14 * 1e6
    add(
        Claim(
            "C23",
            "marginal cost at $3/GPU-hour and 14 tokens/s",
            0.06,
            usd_per_m,
            "$/1M tokens",
            None,
            f"$3/h / (14 tok/s x 3600 s) = ${usd_per_m:.1f} per million tokens: 1000x the stated $0.06 "
            f"(batching by 1000 would be needed to reach it)",
        )
    )
    add(Claim("C24", "$20 to $0.07 per million tokens", 280.0, 20 / 0.07, "x", None))
    add(
        Claim(
            "C25",
            "LoRA r=8, d=4096: 2dr trainable parameters per matrix",
            65536.0,
            float(lora_params(4096, 4096, 8)),
            "parameters",
            None,
            "per adapted d x d matrix, not per layer",
        )
    )
    add(
        Claim(
            "C26",
            "vs d^2 for full fine-tuning: 256x fewer",
            256.0,
            4096**2 / lora_params(4096, 4096, 8),
            "x",
            None,
            f"d^2 = {4096**2:,}",
        )
    )
    nf4 = 7e9 * bytes_per_param("nf4")
    add(
        Claim(
            "C27",
            "7B model: 14 GB in FP16, about 4 GB in NF4",
            4e9,
            nf4,
            "bytes",
            None,
            f"FP16 = {7e9 * 2 / 1e9:.0f} GB (holds); NF4 with double-quant constants = {nf4 / 1e9:.2f} GB, "
            f"+0.5 GB if embeddings stay 16-bit",
        )
    )
    q4 = 70e9 * bytes_per_param("int4")
    add(
        Claim(
            "C28",
            "70B at 4 bits is about 35 GB",
            35e9,
            q4,
            "bytes",
            None,
            f"real 4-bit files carry scales: GGUF Q4_K_M ~{70.55e9 * bytes_per_param('q4_k_m') / 1e9:.1f} GB, "
            f"Q4_0 {70.55e9 * bytes_per_param('q4_0') / 1e9:.1f} GB for Llama-3-70B",
        )
    )
    mix = load_model("mixtral-8x7b")
    add(
        Claim(
            "C30",
            "Mixtral 8x7B top-2 of 8: 25% of expert parameters per token",
            0.25,
            expert_fraction_active(mix.num_experts, mix.experts_per_token),
            "fraction",
            None,
            f"per token; a batch of 16 already touches "
            f"{expected_distinct_experts(8, 2, 16):.1f} of 8 experts per layer, so batched decode reads nearly "
            f"all {mix.total_params() / 1e9:.1f}B parameters",
        )
    )
    add(
        Claim(
            "C31",
            "Phi-3-mini 0.19 cents vs GPT-4-turbo 42.32 cents per request",
            223.0,
            42.32 / 0.19,
            "x",
            None,
        )
    )
    add(
        Claim(
            "C33",
            "compute multiplier 1/(1 - alpha_N - alpha_D), alpha_N=0.076, alpha_D=0.103",
            1.22,
            compute_multiplier(0.076, 0.103),
            "x",
            None,
            "arithmetic holds; the formula is the paper's own, not from Kaplan et al. or Hoffmann et al.",
        )
    )
    a100 = load_hardware("a100-80gb")
    mfu = implied_mfu(1.3e22, 2000 * 86400, a100.flops("bf16"))
    add(
        Claim(
            "C35",
            "BloombergGPT 1.3e22 FLOPs is about 2,000 A100 GPU-days (implied utilization)",
            None,
            mfu,
            "MFU",
            0.15 <= mfu <= 0.65,
            f"plausible utilization ({mfu:.0%} of 312 TFLOP/s BF16) for the stated pair",
        )
    )
    bb = training_flops(50e9, 708e9)
    add(
        Claim(
            "X02",
            "BloombergGPT training compute 1.3e22 FLOPs (50B params, 363B + 345B tokens)",
            1.3e22,
            bb,
            "FLOPs",
            None,
            f"6·N·D from the paper's own N and D = {bb:.2e}, 16x more; at the same "
            f"{mfu:.0%} MFU that is {bb / (mfu * a100.flops('bf16') * 86400):,.0f} A100-days",
        )
    )
    return [_holds(c) for c in claims]


def audit_summary(claims: list[Claim]) -> dict[str, int]:
    """Counts of claims that hold, fail, or are only reported."""
    return {
        "holds": sum(1 for c in claims if c.holds is True),
        "fails": sum(1 for c in claims if c.holds is False),
        "reported": sum(1 for c in claims if c.holds is None),
    }
