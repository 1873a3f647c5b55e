"""Tensor parallelism: all-reduce cost and how many devices a model needs."""

from __future__ import annotations

import math

from cadre.errors import ConfigError

__all__ = ["USABLE_MEMORY_FRACTION", "allreduce_seconds", "devices_needed", "paper_tp_comm_seconds"]

# Share of device memory for weights + KV cache; the rest goes to the runtime and activations.
USABLE_MEMORY_FRACTION = 0.9


def allreduce_seconds(
    message_bytes: float, n_devices: int, link_bytes_per_s: float, latency_s: float
) -> float:
    """Ring all-reduce: α + 2(n−1)/n · m / BW (Thakur, Rabenseifner & Gropp 2005; Patarasuk & Yuan 2009)."""
    if n_devices < 1:
        raise ConfigError(f"tp must be >= 1, got {n_devices}")
    if n_devices == 1:
        return 0.0
    if link_bytes_per_s <= 0:
        raise ConfigError(
            "tensor parallelism needs an interconnect: this hardware has interconnect_bytes_per_s 0"
        )
    return latency_s + 2.0 * (n_devices - 1) / n_devices * message_bytes / link_bytes_per_s


def paper_tp_comm_seconds(num_layers: int, hidden_size: int, nvlink_bytes_per_s: float = 900e9) -> float:
    """The paper's bandwidth-only estimate 4·L·d / B_nvlink per token (no latency term)."""
    return 4.0 * num_layers * hidden_size / nvlink_bytes_per_s


def devices_needed(
    bytes_needed: float, device_memory_bytes: float, *, usable_fraction: float = USABLE_MEMORY_FRACTION
) -> int:
    """Devices whose usable memory (default 90%, the rest for runtime and activations) holds ``bytes_needed``."""
    if device_memory_bytes <= 0:
        raise ConfigError("device memory must be > 0")
    return max(1, math.ceil(bytes_needed / (device_memory_bytes * usable_fraction)))
