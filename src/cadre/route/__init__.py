"""cadre.route: send each request to the right specialist, or to the generalist when none should answer.

Public API (imports are lazy so that ``import cadre.route`` stays cheap)::

    from cadre.route import fit_router, load_router, save_router
    router = fit_router([("my card was charged twice", "billing"), ...])     # strategy chosen by CV
    router.route("refund please").route          # -> "billing" | ... | "generalist"
    save_router(router, "out/router"); router = load_router("out/router")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cadre.route.protocol import GENERALIST, Embedder, RouteDecision, Router

if TYPE_CHECKING:
    from cadre.route.cascade import (
        SIGNALS,
        Calibration,
        Cascade,
        CascadeResult,
        MeanLogprob,
        SelfAgreement,
        Verifier,
        calibrate_error_rate,
        calibrate_generalist_share,
        calibrate_joint_risk,
    )
    from cadre.route.config import RouterSpec, RulesSpec
    from cadre.route.data import Example, load_examples
    from cadre.route.encoders import EncoderForm, get_route_embedder
    from cadre.route.evaluation import RouteEvalReport, evaluate_router
    from cadre.route.fit import fit_router
    from cadre.route.io import load_router, save_router
    from cadre.route.strategies import ROUTERS, Explanation, SavableRouter

__all__ = [
    "GENERALIST",
    "ROUTERS",
    "SIGNALS",
    "Calibration",
    "Cascade",
    "CascadeResult",
    "Embedder",
    "EncoderForm",
    "Example",
    "Explanation",
    "MeanLogprob",
    "RouteDecision",
    "RouteEvalReport",
    "Router",
    "RouterSpec",
    "RulesSpec",
    "SavableRouter",
    "SelfAgreement",
    "Verifier",
    "calibrate_error_rate",
    "calibrate_generalist_share",
    "calibrate_joint_risk",
    "evaluate_router",
    "fit_router",
    "get_route_embedder",
    "load_examples",
    "load_router",
    "save_router",
]

_LAZY = {
    "SIGNALS": "cadre.route.cascade",
    "Calibration": "cadre.route.cascade",
    "Cascade": "cadre.route.cascade",
    "CascadeResult": "cadre.route.cascade",
    "MeanLogprob": "cadre.route.cascade",
    "SelfAgreement": "cadre.route.cascade",
    "Verifier": "cadre.route.cascade",
    "calibrate_error_rate": "cadre.route.cascade",
    "calibrate_generalist_share": "cadre.route.cascade",
    "calibrate_joint_risk": "cadre.route.cascade",
    "RouterSpec": "cadre.route.config",
    "RulesSpec": "cadre.route.config",
    "Example": "cadre.route.data",
    "EncoderForm": "cadre.route.encoders",
    "get_route_embedder": "cadre.route.encoders",
    "load_examples": "cadre.route.data",
    "fit_router": "cadre.route.fit",
    "load_router": "cadre.route.io",
    "save_router": "cadre.route.io",
    "RouteEvalReport": "cadre.route.evaluation",
    "evaluate_router": "cadre.route.evaluation",
    "ROUTERS": "cadre.route.strategies",
    "Explanation": "cadre.route.strategies",
    "SavableRouter": "cadre.route.strategies",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cadre.route' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
