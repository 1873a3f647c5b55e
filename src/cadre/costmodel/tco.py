"""Dollars and watts: cost per request and per million tokens, power and energy."""

from __future__ import annotations

from cadre.costmodel.hardware import Hardware
from cadre.errors import ConfigError

__all__ = [
    "cost_per_million_tokens",
    "cost_per_request",
    "energy_cost_per_hour",
    "energy_cost_per_request",
    "power_kw",
]


def cost_per_request(
    seconds: float, hardware: Hardware, *, concurrency: int = 1, n_devices: int = 1
) -> float:
    """Dollars for one request that occupied ``n_devices`` for ``seconds`` while sharing them with
    ``concurrency`` requests: n·c·t / (3600·B) (the paper's C = n·c·t/3600, divided by the batch)."""
    if seconds < 0:
        raise ConfigError(f"seconds must be >= 0, got {seconds}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if n_devices < 1:
        raise ConfigError(f"n_devices must be >= 1, got {n_devices}")
    return n_devices * hardware.price_per_hour * seconds / 3600.0 / concurrency


def cost_per_million_tokens(tokens_per_second: float, hardware: Hardware, *, n_devices: int = 1) -> float:
    """Dollars per 1e6 generated tokens at an aggregate throughput of ``tokens_per_second``."""
    if tokens_per_second <= 0:
        raise ConfigError(f"tokens_per_second must be > 0, got {tokens_per_second}")
    return n_devices * hardware.price_per_hour / 3600.0 / tokens_per_second * 1e6


def power_kw(n_devices: int, tdp_watts: float, *, pue: float = 1.0, utilization: float = 1.0) -> float:
    """P = n·TDP·PUE·u in kW (TDP is a cap: u = 1 is the upper bound)."""
    if pue < 1:
        raise ConfigError(f"pue must be >= 1, got {pue}")
    if not 0 <= utilization <= 1:
        raise ConfigError(f"utilization must be in [0, 1], got {utilization}")
    return n_devices * tdp_watts * pue * utilization / 1000.0


def energy_cost_per_hour(kw: float, price_per_kwh: float) -> float:
    """Dollars per hour of running at ``kw``."""
    return kw * price_per_kwh


def energy_cost_per_request(
    kw: float, price_per_kwh: float, seconds: float, *, concurrency: int = 1
) -> float:
    """Energy dollars of one request of ``seconds`` sharing the machine with ``concurrency`` requests."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    return kw * price_per_kwh * seconds / 3600.0 / concurrency
