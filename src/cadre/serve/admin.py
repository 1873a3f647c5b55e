"""Admin and operations: ``/health``, ``/metrics``, hot reload and adding/replacing/removing a specialist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from cadre.serve.deps import admin_gateway, gateway
from cadre.serve.serving import Gateway
from cadre.serve.telemetry import CONTENT_TYPE_LATEST

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
async def health(gw: Gateway = Depends(gateway)) -> JSONResponse:
    """``ok`` (200), or ``draining`` (503, so load balancers stop sending) once a shutdown has begun."""
    snap = gw.snapshot
    body = {
        "status": "draining" if gw.draining else "ok",
        "models": sorted(snap.targets),
        "router": snap.router is not None,
        "in_flight": gw.admission.active,
        "queue_size": gw.admission.limit,
    }
    return JSONResponse(body, status_code=503 if gw.draining else 200)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/admin/reload")
async def reload(gw: Gateway = Depends(admin_gateway)) -> dict[str, Any]:
    return await gw.reload()


@router.post("/admin/specialists")
async def upsert_specialist(
    specialist: dict[str, Any] = Body(...), gw: Gateway = Depends(admin_gateway)
) -> dict[str, Any]:
    return await gw.upsert_specialist(specialist)


@router.delete("/admin/specialists/{name}")
async def remove_specialist(name: str, gw: Gateway = Depends(admin_gateway)) -> dict[str, Any]:
    return await gw.remove_specialist(name)
