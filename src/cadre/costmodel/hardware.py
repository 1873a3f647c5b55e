"""The hardware catalog: spec and measured figures per device, loaded from ``data/hardware.yaml``.

The ``local`` entry is replaced by ``$CADRE_HOME/hardware-local.yaml`` once ``cadre cost calibrate`` ran.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from cadre.config.base import StrictModel, load_spec, parse_spec
from cadre.errors import ConfigError, NotFoundError, did_you_mean
from cadre.paths import cadre_home

__all__ = [
    "Hardware",
    "MeasuredFigures",
    "PeakFlops",
    "hardware_names",
    "load_hardware",
    "local_hardware_path",
]


class PeakFlops(StrictModel):
    """Peak FLOP/s of one precision: dense, and with 2:4 structured sparsity where quoted."""

    dense: float = Field(gt=0)
    sparse: float | None = Field(default=None, gt=0)
    note: str | None = None


class MeasuredFigures(StrictModel):
    """What was measured (not the datasheet): by calibration or a cited benchmark."""

    memory_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    peak_flops: dict[str, float] = Field(default_factory=dict)
    decode_tokens_per_s: dict[str, float] = Field(default_factory=dict)
    source: str = ""
    measured_at: str | None = None


class Hardware(StrictModel):
    """One accelerator (or this machine). Spec figures are top-level; measured ones live in ``measured``."""

    name: str = ""
    display_name: str
    vendor: str
    family: str
    memory_bytes: float = Field(gt=0)
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    peak_flops: dict[str, PeakFlops]
    interconnect: str = "none"
    interconnect_bytes_per_s: float = Field(default=0.0, ge=0)
    allreduce_latency_s: float = Field(default=2.0e-5, ge=0)
    tdp_watts: float = Field(gt=0)
    price_per_hour: float = Field(ge=0)
    sources: list[str] = Field(default_factory=list)
    measured: MeasuredFigures | None = None

    def flops(self, precision: str = "bf16", *, sparse: bool = False, measured: bool = False) -> float:
        """Peak FLOP/s for ``precision`` (falls back FP8→FP16→FP32 when the device lacks the format)."""
        from cadre.costmodel.quant import compute_precision

        p = compute_precision(precision)
        if measured and self.measured and p in self.measured.peak_flops:
            return self.measured.peak_flops[p]
        for cand in (p, "fp16" if p in ("fp8", "int8", "bf16") else p, "bf16", "fp32"):
            if cand in self.peak_flops:
                pf = self.peak_flops[cand]
                return pf.sparse if sparse and pf.sparse else pf.dense
        raise ConfigError(f"hardware {self.name!r} has no peak_flops entry (add one under peak_flops)")

    def bandwidth(self, *, measured: bool = False) -> float:
        """Memory bandwidth in bytes/s: the datasheet figure, or the measured one when asked and known."""
        if measured and self.measured and self.measured.memory_bandwidth_bytes_per_s:
            return self.measured.memory_bandwidth_bytes_per_s
        return self.memory_bandwidth_bytes_per_s

    def ridge_point(self, precision: str = "bf16", *, measured: bool = False) -> float:
        """FLOP per byte where the roofline bends (peak FLOP/s ÷ bandwidth; Williams et al. 2009)."""
        return self.flops(precision, measured=measured) / self.bandwidth(measured=measured)


@cache
def _catalog() -> dict[str, dict[str, Any]]:
    text = resources.files("cadre.costmodel").joinpath("data/hardware.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {str(k): v for k, v in data.items()}


def local_hardware_path() -> Path:
    """Where ``cadre cost calibrate`` stores this machine's measured figures."""
    return cadre_home() / "hardware-local.yaml"


def hardware_names() -> list[str]:
    """Every name in the catalog."""
    return sorted(_catalog())


def load_hardware(name: str, *, price_per_hour: float | None = None) -> Hardware:
    """Look up hardware ``name`` (catalog name or a YAML file path); ``price_per_hour`` overrides the price.

    ``local`` is the calibrated machine when ``cadre cost calibrate`` ran, otherwise the documented default.
    """
    if price_per_hour is not None and price_per_hour < 0:
        raise ConfigError(f"price_per_hour must be >= 0, got {price_per_hour}")
    key = name.strip().lower()
    if key == "local" and local_hardware_path().is_file():
        hw = load_spec(Hardware, local_hardware_path())
    elif key in _catalog():
        hw = parse_spec(Hardware, {**_catalog()[key], "name": key}, source=f"hardware catalog: {key}")
    elif name.endswith((".yaml", ".yml", ".json")):
        if not Path(name).is_file():
            raise NotFoundError(f"hardware file {name!r} does not exist")
        hw = load_spec(Hardware, name)
        if not hw.name:
            hw.name = Path(name).stem
    else:
        raise did_you_mean(name, _catalog(), kind="hardware")
    if key == "local":
        hw.name = "local"
    if price_per_hour is not None:
        hw.price_per_hour = price_per_hour
    return hw
