"""Bearer keys: the inference key (required when the server listens beyond localhost) and the admin key.

Inference keys come from ``--api-key`` or ``CADRE_API_KEY``, admin keys from ``--admin-key`` or
``CADRE_ADMIN_KEY`` (comma-separated for several). They are compared in constant time; a request without a valid
``Authorization: Bearer <key>`` gets a 401 in OpenAI's shape. An admin key is never an inference key.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
from collections.abc import Iterable

from fastapi import Request

from cadre.errors import ConfigError
from cadre.serve.errors import APIError

__all__ = ["ADMIN_ENV_VAR", "ENV_VAR", "ApiKeys", "is_loopback", "keys_from_env"]

ENV_VAR = "CADRE_API_KEY"
ADMIN_ENV_VAR = "CADRE_ADMIN_KEY"


def keys_from_env(explicit: str | None = None, *, env_var: str = ENV_VAR) -> list[str]:
    """The keys given on the command line, else those in ``env_var`` (comma-separated)."""
    raw = explicit if explicit is not None else os.environ.get(env_var, "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` provably listens on this machine only.

    An IP address counts when it is a loopback address (``127.0.0.0/8``, ``::1``); an IPv4-mapped IPv6 address
    (``::ffff:127.0.0.1``) does not, nor does the empty string (every interface for uvicorn), nor any hostname
    but ``localhost``, which counts only when every address it resolves to is loopback.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host.lower() != "localhost":
            return False
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return False
        return bool(infos) and all(is_loopback(str(info[4][0])) for info in infos)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return False
    return ip.is_loopback


class ApiKeys:
    """The accepted keys; empty means no authentication (allowed on loopback only)."""

    def __init__(self, keys: Iterable[str] = (), *, kind: str = "API key") -> None:
        self._keys = [k.encode() for k in keys]
        self.kind = kind
        flag = "--admin-key" if kind == "admin key" else "--api-key"
        for k in self._keys:
            if len(k) < 8:
                raise ConfigError(f"an {kind} must be at least 8 characters; pick a longer {flag}")

    def overlaps(self, other: ApiKeys) -> bool:
        """Whether a key of ``other`` is also one of these."""
        return any(self.valid(k.decode()) for k in other._keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def require_for(self, host: str) -> None:
        """Refuse to serve beyond localhost without a key."""
        if not self.enabled and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on {host!r} without an API key: only a loopback address (127.0.0.1, ::1, "
                f"localhost) may serve without one; pass --api-key KEY or set {ENV_VAR}"
            )

    def valid(self, presented: str) -> bool:
        token = presented.encode()
        # Compare against every key (no early exit) so timing does not reveal which one matched.
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(token, key)
        return ok

    def check(self, request: Request) -> None:
        """Raise a 401 unless the request carries a valid bearer key (no-op when keys are disabled)."""
        if not self.enabled:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                f"missing {self.kind}: send 'Authorization: Bearer <key>'"
                + (" (the openai client's api_key)" if self.kind == "API key" else ""),
                code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not self.valid(token.strip()):
            raise APIError(
                401, f"invalid {self.kind}", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
