"""Mixture-of-experts: how many distinct experts a decode step reads at batch B."""

from __future__ import annotations

from cadre.errors import ConfigError

__all__ = ["expected_distinct_experts", "expert_fraction_active"]


def expected_distinct_experts(num_experts: int, top_k: int, tokens: float) -> float:
    """E·(1 − (1 − k/E)^B): expected distinct experts hit by B tokens with uniform top-k routing.

    Each expert is missed by one token with probability 1 − k/E (a token picks k distinct experts), so it
    is missed by all B independent tokens with probability (1 − k/E)^B (coupon-collector occupancy).
    """
    if num_experts <= 0 or top_k <= 0:
        return 0.0
    if top_k > num_experts:
        raise ConfigError(f"top_k ({top_k}) is larger than num_experts ({num_experts})")
    if tokens < 0:
        raise ConfigError(f"tokens must be >= 0, got {tokens}")
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)


def expert_fraction_active(num_experts: int, top_k: int) -> float:
    """k/E: the share of expert parameters one token uses (Shazeer et al. 2017)."""
    if num_experts <= 0:
        raise ConfigError("num_experts must be > 0")
    return top_k / num_experts
