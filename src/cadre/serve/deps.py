"""What every route depends on: the gateway of this app, after the caller's key is checked."""

from __future__ import annotations

from fastapi import Request

from cadre.serve.errors import APIError
from cadre.serve.serving import Gateway

__all__ = ["admin_gateway", "authorized_gateway", "gateway"]


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def authorized_gateway(request: Request) -> Gateway:
    request.app.state.api_keys.check(request)
    return gateway(request)


def admin_gateway(request: Request) -> Gateway:
    """The gateway for an admin call: admin enabled, the admin key presented, and a JSON body on writes.

    The admin key is its own privilege: the inference key never opens the admin API, and neither does the
    absence of keys on localhost. Requiring ``application/json`` makes a browser preflight any cross-site
    write (a plain HTML form cannot send it).
    """
    gw = gateway(request)
    if not gw.spec.server.admin:
        raise APIError(
            403,
            "the admin API is disabled; set server.admin: true in the ecosystem and start with --admin-key",
            code="admin_disabled",
        )
    keys = request.app.state.admin_keys
    if not keys.enabled:
        raise APIError(
            403,
            "the admin API needs an admin key: restart with --admin-key KEY (or CADRE_ADMIN_KEY)",
            code="admin_key_not_configured",
        )
    keys.check(request)
    if request.method in ("POST", "PUT", "PATCH"):
        ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if ctype != "application/json":
            raise APIError(
                415,
                f"admin writes need 'Content-Type: application/json' (got {ctype or 'none'!r})",
                code="unsupported_media_type",
            )
    return gw
