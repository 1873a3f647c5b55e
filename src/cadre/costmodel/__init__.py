"""cadre.costmodel: roofline and TCO model of LLM inference and training, with catalogs as data.

Pure functions of (model architecture, hardware, workload) → seconds, bytes, FLOPs, dollars, watts. Every
formula cites its source in the module that implements it.
"""

from __future__ import annotations

from typing import Any

from cadre.costmodel.arch import ModelArch, load_model, model_names

# audit and calibrate are imported eagerly (light): a lazy name that is also a submodule's name is shadowed by
# the submodule once anything imports it.
from cadre.costmodel.audit import audit, audit_summary
from cadre.costmodel.calibrate import calibrate
from cadre.costmodel.compare import CompareRow, compare
from cadre.costmodel.hardware import Hardware, hardware_names, load_hardware
from cadre.costmodel.kv import kv_bytes, kv_bytes_per_token
from cadre.costmodel.moe import expected_distinct_experts
from cadre.costmodel.plot import (
    RooflinePoint,
    RooflineWorkload,
    plot_compare,
    plot_roofline,
    roofline_workload,
)
from cadre.costmodel.quant import bytes_per_param, quantized_weight_bytes
from cadre.costmodel.roofline import (
    DecodeStep,
    Efficiency,
    Prefill,
    critical_batch,
    decode_step,
    memory_needed,
    prefill,
    weight_bytes,
)
from cadre.costmodel.speculative import paper_speedup, speculative_speedup
from cadre.costmodel.tco import cost_per_million_tokens, cost_per_request, power_kw
from cadre.costmodel.training import chinchilla_optimal, lora_trainable_params, training_flops

__all__ = [
    "CompareRow",
    "DecodeStep",
    "Efficiency",
    "Hardware",
    "ModelArch",
    "Prefill",
    "RooflinePoint",
    "RooflineWorkload",
    "audit",
    "audit_summary",
    "bytes_per_param",
    "calibrate",
    "chinchilla_optimal",
    "compare",
    "cost_per_million_tokens",
    "cost_per_request",
    "critical_batch",
    "decode_step",
    "engine_efficiency",
    "expected_distinct_experts",
    "hardware_names",
    "kv_bytes",
    "kv_bytes_per_token",
    "load_hardware",
    "load_model",
    "lora_trainable_params",
    "memory_needed",
    "model_names",
    "paper_speedup",
    "plot_compare",
    "plot_roofline",
    "power_kw",
    "prefill",
    "quantized_weight_bytes",
    "roofline_workload",
    "speculative_speedup",
    "training_flops",
    "validate",
    "weight_bytes",
]

_LAZY = {
    "validate": "cadre.costmodel.validate",
    "engine_efficiency": "cadre.costmodel.validate",
}


def __getattr__(name: str) -> Any:
    """Import the heavier entry points (scipy fit, llama.cpp calibration) only when used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cadre.costmodel' has no attribute {name!r}")
