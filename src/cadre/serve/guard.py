"""The Host and Origin allow-list of a loopback listener (against DNS rebinding and cross-site requests).

A server on 127.0.0.1 without a key trusts whoever can reach the port. A web page the operator visits can reach
it too: directly (a cross-site ``fetch``, which carries a foreign ``Origin``) or through DNS rebinding (its own
name resolved to 127.0.0.1, which carries a foreign ``Host``). So on a connection that arrived on a loopback
address, every request must name a loopback host (``127.0.0.1``, ``localhost``, ``[::1]``, any port) or one of
``server.allowed_hosts``, and an ``Origin``, when sent, must be a loopback origin or one of
``server.allowed_origins``. Anything else gets a 403 in OpenAI's shape. (The same check as the MCP transport
guidance on DNS rebinding: https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#security-warning.)
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from cadre.ecosystem.spec import ServerSpec
from cadre.serve.auth import is_loopback
from cadre.serve.errors import APIError, error_response

__all__ = ["HostGuard", "host_of"]

_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


def host_of(value: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:8000`` → ``::1``, ``Example.com:80`` → ``example.com``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def _host_allowed(value: str, allowed: list[str]) -> bool:
    host = host_of(value)
    if host in _LOOPBACK_NAMES or is_loopback(host):
        return True
    return value.strip().lower() in allowed or host in allowed


def _origin_allowed(origin: str, allowed: list[str]) -> bool:
    origin = origin.strip().lower()
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.hostname is None:
        return False  # "null" (sandboxed pages, file://) and anything unparsable
    return parts.hostname in _LOOPBACK_NAMES


class HostGuard:
    """Refuse requests with a foreign ``Host`` or ``Origin`` that arrived on a loopback address (403)."""

    def __init__(self, app: ASGIApp, settings: Callable[[], ServerSpec]) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or not server or not is_loopback(str(server[0])):
            await self.app(scope, receive, send)
            return
        s = self.settings()
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", [])
            if k in (b"host", b"origin")
        }
        host, origin = headers.get("host"), headers.get("origin")
        refusal: tuple[str, str] | None = None
        if host is not None and not _host_allowed(host, [h.lower() for h in s.allowed_hosts]):
            refusal = (
                f"Host {host!r}",
                "a DNS-rebinding guard; if it is your own reverse proxy, add it to server.allowed_hosts",
            )
        elif origin is not None and not _origin_allowed(origin, [o.lower() for o in s.allowed_origins]):
            refusal = (
                f"Origin {origin!r}",
                "a cross-site request guard; if it is your own web app, add it to server.allowed_origins",
            )
        if refusal is not None:
            what, why = refusal
            code = "host_not_allowed" if what.startswith("Host") else "origin_not_allowed"
            err = APIError(403, f"{what} is not allowed on this loopback server ({why})", code=code)
            await error_response(err)(scope, receive, send)
            return
        await self.app(scope, receive, send)
