"""Training compute: 6ND, wall time at a given MFU, Chinchilla-optimal size, LoRA parameter counts."""

from __future__ import annotations

import math

from cadre.costmodel.arch import ModelArch
from cadre.errors import ConfigError

__all__ = [
    "chinchilla_optimal",
    "compute_multiplier",
    "implied_mfu",
    "lora_params",
    "lora_trainable_params",
    "training_flops",
    "training_gpu_seconds",
]

CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022 (arXiv 2203.15556), Table 3: ~20 tokens/parameter


def _pos(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def training_flops(n_params: float, n_tokens: float) -> float:
    """C ≈ 6·N·D (forward 2ND + backward 4ND; Kaplan et al. 2020, arXiv 2001.08361 §2.1)."""
    _pos("n_params", n_params)
    _pos("n_tokens", n_tokens)
    return 6.0 * n_params * n_tokens


def training_gpu_seconds(flops: float, peak_flops: float, mfu: float) -> float:
    """GPU-seconds = C / (MFU · peak) (model FLOP utilization, Chowdhery et al. 2022, PaLM App. B)."""
    _pos("flops", flops)
    _pos("peak_flops", peak_flops)
    if not 0 < mfu <= 1:
        raise ConfigError(f"mfu must be in (0, 1], got {mfu}")
    return flops / (mfu * peak_flops)


def implied_mfu(flops: float, gpu_seconds: float, peak_flops: float) -> float:
    """The utilization a (FLOPs, GPU-time) pair implies."""
    _pos("gpu_seconds", gpu_seconds)
    return flops / (gpu_seconds * peak_flops)


def chinchilla_optimal(compute_flops: float) -> tuple[float, float]:
    """(N, D) with D = 20·N and C = 6·N·D, i.e. N = sqrt(C / 120) (Hoffmann et al. 2022)."""
    _pos("compute_flops", compute_flops)
    n = math.sqrt(compute_flops / (6.0 * CHINCHILLA_TOKENS_PER_PARAM))
    return n, CHINCHILLA_TOKENS_PER_PARAM * n


def compute_multiplier(alpha_n: float, alpha_d: float) -> float:
    """The paper's 1/(1 − α_N − α_D) (its own construction; arithmetic only)."""
    if alpha_n + alpha_d >= 1:
        raise ConfigError("alpha_n + alpha_d must be < 1")
    return 1.0 / (1.0 - alpha_n - alpha_d)


def lora_params(d_in: int, d_out: int, rank: int) -> int:
    """r·(d_in + d_out): A is r×d_in, B is d_out×r (Hu et al. 2021, arXiv 2106.09685 §4.1)."""
    if rank < 1 or d_in < 1 or d_out < 1:
        raise ConfigError(f"rank and dimensions must be >= 1 (rank={rank}, d_in={d_in}, d_out={d_out})")
    return rank * (d_in + d_out)


_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_trainable_params(
    model: ModelArch, rank: int, targets: tuple[str, ...] = ("q_proj", "v_proj")
) -> int:
    """Trainable LoRA parameters of ``model`` with adapters on ``targets`` in every layer (dense MLP)."""
    d, hd = model.hidden_size, model.head_dim
    shapes = {
        "q_proj": (d, model.num_heads * hd),
        "k_proj": (d, model.num_kv_heads * hd),
        "v_proj": (d, model.num_kv_heads * hd),
        "o_proj": (model.num_heads * hd, d),
        "gate_proj": (d, model.intermediate_size),
        "up_proj": (d, model.intermediate_size),
        "down_proj": (model.intermediate_size, d),
    }
    total = 0
    for t in targets:
        if t not in shapes:
            from cadre.errors import did_you_mean

            raise did_you_mean(t, _TARGETS, kind="LoRA target")
        total += lora_params(*shapes[t], rank)
    return total * model.num_layers
