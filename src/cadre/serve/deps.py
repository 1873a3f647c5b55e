"""What every route depends on: the gateway of this app, after the caller's API key is checked."""

from __future__ import annotations

from fastapi import Request

from cadre.serve.serving import Gateway

__all__ = ["authorized_gateway", "gateway"]


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def authorized_gateway(request: Request) -> Gateway:
    request.app.state.api_keys.check(request)
    return gateway(request)
