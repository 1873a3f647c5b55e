"""cadre.costmodel: roofline and TCO model of LLM inference and training, with catalogs as data.

Pure functions of (model architecture, hardware, workload) → seconds, bytes, FLOPs, dollars, watts. Every
formula cites its source in the module that implements it.
"""

from __future__ import annotations

from typing import Any

from cadre.costmodel.arch import ModelArch, load_model, model_names
from cadre.costmodel.compare import CompareRow, compare
from cadre.costmodel.engines import EngineChoice, engine_for_hardware, resolve_engine
from cadre.costmodel.estimates import (
    DecodeCost,
    KvCacheSize,
    MemoryFit,
    ModelCatalogEntry,
    ModelComparison,
    PrefillCost,
    RooflineChart,
    SpeculativeEstimate,
    TrainingCost,
    compare_models,
    decode_cost,
    efficiency_for_engine,
    hardware_catalog,
    kv_cache_size,
    memory_fit,
    model_catalog,
    prefill_cost,
    roofline_chart,
    speculative_estimate,
    training_cost,
)
from cadre.costmodel.hardware import Hardware, hardware_names, load_hardware
from cadre.costmodel.kv import kv_bytes, kv_bytes_per_token, paper_kv_bytes_per_token
from cadre.costmodel.moe import expected_distinct_experts
from cadre.costmodel.parallel import USABLE_MEMORY_FRACTION, devices_needed
from cadre.costmodel.plan import BreakEven, CostPlan, OptionPlan, SensitivityRow, cost_at_volume, plan_costs
from cadre.costmodel.plan_spec import (
    ApiOption,
    Measured,
    PlanSpec,
    SelfHostedOption,
    Workload,
    apply_measured,
    load_plan,
)
from cadre.costmodel.plot import (
    RooflinePoint,
    RooflineWorkload,
    plot_compare,
    plot_plan,
    plot_roofline,
    roofline_workload,
)
from cadre.costmodel.prices import ApiPrice, ApiPriceTable, api_request_cost, load_api_prices
from cadre.costmodel.quant import bytes_per_param, compute_precision, quantized_weight_bytes
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
from cadre.costmodel.training import (
    chinchilla_optimal,
    lora_trainable_params,
    training_flops,
    training_gpu_seconds,
)

__all__ = [
    "USABLE_MEMORY_FRACTION",
    "ApiOption",
    "ApiPrice",
    "ApiPriceTable",
    "BreakEven",
    "Calibration",
    "Claim",
    "CompareRow",
    "CostPlan",
    "DecodeCost",
    "DecodeStep",
    "Efficiency",
    "EngineChoice",
    "Hardware",
    "KvCacheSize",
    "Measured",
    "MemoryFit",
    "ModelArch",
    "ModelCatalogEntry",
    "ModelComparison",
    "OptionPlan",
    "PlanSpec",
    "Prefill",
    "PrefillCost",
    "RooflineChart",
    "RooflinePoint",
    "RooflineWorkload",
    "SelfHostedOption",
    "SensitivityRow",
    "SpeculativeEstimate",
    "TrainingCost",
    "ValidationReport",
    "Workload",
    "api_request_cost",
    "apply_measured",
    "audit",
    "audit_summary",
    "bytes_per_param",
    "calibrate",
    "chinchilla_optimal",
    "compare",
    "compare_models",
    "compute_precision",
    "cost_at_volume",
    "cost_per_million_tokens",
    "cost_per_request",
    "critical_batch",
    "decode_cost",
    "decode_step",
    "devices_needed",
    "efficiency_for_engine",
    "engine_efficiency",
    "engine_errors",
    "engine_for_hardware",
    "expected_distinct_experts",
    "hardware_catalog",
    "hardware_names",
    "kv_bytes",
    "kv_bytes_per_token",
    "kv_cache_size",
    "load_api_prices",
    "load_hardware",
    "load_model",
    "load_plan",
    "lora_trainable_params",
    "memory_fit",
    "memory_needed",
    "model_catalog",
    "model_names",
    "paper_kv_bytes_per_token",
    "paper_speedup",
    "plan_costs",
    "plot_compare",
    "plot_plan",
    "plot_roofline",
    "power_kw",
    "prefill",
    "prefill_cost",
    "quantized_weight_bytes",
    "resolve_engine",
    "roofline_chart",
    "roofline_workload",
    "speculative_estimate",
    "speculative_speedup",
    "training_cost",
    "training_flops",
    "training_gpu_seconds",
    "validate",
    "weight_bytes",
]

_LAZY = {
    "Calibration": "cadre.costmodel.calibration",
    "Claim": "cadre.costmodel.paper_audit",
    "ValidationReport": "cadre.costmodel.validation",
    "audit": "cadre.costmodel.paper_audit",
    "audit_summary": "cadre.costmodel.paper_audit",
    "validate": "cadre.costmodel.validation",
    "engine_efficiency": "cadre.costmodel.validation",
    "engine_errors": "cadre.costmodel.validation",
    "calibrate": "cadre.costmodel.calibration",
}


def __getattr__(name: str) -> Any:
    """Import the heavier entry points (scipy fit, llama.cpp calibration) only when used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cadre.costmodel' has no attribute {name!r}")
