"""Speculative decoding speedup: Leviathan et al. (arXiv 2211.17192), and the paper's own formula."""

from __future__ import annotations

from cadre.errors import ConfigError

__all__ = ["expected_tokens_per_step", "paper_speedup", "speculative_speedup"]


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha < 1.0:
        raise ConfigError(f"acceptance rate must be in [0, 1), got {alpha}")


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """(1 − α^{γ+1}) / (1 − α): tokens produced per target forward pass (Leviathan et al. 2023, eq. 1)."""
    _check_alpha(alpha)
    if gamma < 1:
        raise ConfigError(f"gamma (draft tokens per step) must be >= 1, got {gamma}")
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def speculative_speedup(alpha: float, gamma: int, cost_ratio: float) -> float:
    """Walltime speedup (1 − α^{γ+1}) / ((1 − α)(γc + 1)), c = draft step time / target step time (Thm 3.8)."""
    if cost_ratio < 0:
        raise ConfigError(f"cost_ratio must be >= 0, got {cost_ratio}")
    return expected_tokens_per_step(alpha, gamma) / (gamma * cost_ratio + 1.0)


def paper_speedup(beta: float, gamma: float) -> float:
    """The paper's 1/(1 − β + βγ) (flagged: not the standard form; with γ < 1 it cannot exceed 1/γ)."""
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"beta must be in [0, 1], got {beta}")
    return 1.0 / (1.0 - beta + beta * gamma)
