"""Which target answers a request: the model named, or for ``model="auto"`` the router's choice, with its gates."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cadre.ecosystem.spec import AUTO_MODEL
from cadre.errors import BackendError, CadreError, did_you_mean
from cadre.route import GENERALIST, RouteDecision
from cadre.runtime.protocol import ChatMessage
from cadre.serve.errors import APIError
from cadre.serve.protocol import CadreInfo
from cadre.serve.served_models import Snapshot, Target
from cadre.serve.telemetry import Metrics

__all__ = ["Decision", "choose_target", "merge_system"]

log = logging.getLogger("cadre.serve")


@dataclass
class Decision:
    """The target that answers, and what the response says about why."""

    target: Target
    info: CadreInfo


def merge_system(system_prompt: str | None, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Put the target's system prompt first; a client's own system text follows it in the same message."""
    msgs = [dict(m) for m in messages]
    if not system_prompt:
        return msgs  # type: ignore[return-value]
    if msgs and msgs[0]["role"] == "system":
        msgs[0]["content"] = f"{system_prompt}\n\n{msgs[0]['content']}"
        return msgs  # type: ignore[return-value]
    return [{"role": "system", "content": system_prompt}, *msgs]  # type: ignore[list-item]


async def choose_target(
    snap: Snapshot, model: str, messages: Sequence[ChatMessage], *, metrics: Metrics
) -> Decision:
    """The target for ``model``: a served name as is, ``auto`` through the router (generalist when it fails)."""
    if model != AUTO_MODEL:
        target = snap.targets.get(model)
        if target is None:
            known = [*snap.targets, AUTO_MODEL]
            raise did_you_mean(model, known, kind="model")
        reason = "requested by name" + (f"; {target.note}" if target.note else "")
        return Decision(target, CadreInfo(route=target.name, reason=reason, requested=model))
    if snap.router is None:
        raise APIError(
            400,
            "model 'auto' needs a router: give the specialists `examples` or set router.path in the ecosystem"
            + (f" ({snap.router_note})" if snap.router_note else ""),
            param="model",
            code="no_router",
        )
    router = snap.router
    t0 = time.perf_counter()
    try:
        decision: RouteDecision = await asyncio.to_thread(router.route_chat, list(messages))
    except CadreError as err:
        if snap.generalist is None:
            raise
        log.warning("the router failed (%s); the generalist answers", err)
        metrics.fallbacks.labels(AUTO_MODEL, "router_error").inc()
        info = CadreInfo(route=GENERALIST, reason="the router failed: generalist", requested=AUTO_MODEL)
        info.fallback = True
        return Decision(snap.generalist, info)
    metrics.router_latency.observe(time.perf_counter() - t0)
    route, reason = decision.route, decision.reason or "router"
    threshold = snap.spec.router.threshold
    if route != GENERALIST and threshold is not None and decision.score < threshold:
        route, reason = (
            GENERALIST,
            f"{decision.route} scored {decision.score:.3f} < router.threshold {threshold}",
        )
    if route == GENERALIST and snap.generalist is None:
        best = max(decision.scores.items(), key=lambda kv: kv[1])[0] if decision.scores else None
        if best is None or best not in snap.targets:
            raise APIError(
                400,
                "the router sent this request to the generalist, and none is configured",
                param="model",
                code="no_generalist",
            )
        route, reason = best, f"{reason}; no generalist configured: best specialist"
    target = snap.targets.get(route)
    if target is None:
        raise BackendError(
            f"the router chose {route!r}, which this ecosystem does not serve; refit the router"
        )
    return Decision(
        target,
        CadreInfo(route=target.name, reason=reason, score=float(decision.score), requested=AUTO_MODEL),
    )
