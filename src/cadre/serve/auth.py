"""Bearer API keys: required when the server listens beyond localhost.

Keys come from ``--api-key`` or ``CADRE_API_KEY`` (comma-separated for several). They are compared in constant
time; a request without a valid ``Authorization: Bearer <key>`` gets a 401 in OpenAI's shape.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable

from fastapi import Request

from cadre.errors import ConfigError
from cadre.serve.errors import APIError

__all__ = ["ApiKeys", "is_loopback", "keys_from_env"]

ENV_VAR = "CADRE_API_KEY"


def keys_from_env(explicit: str | None = None) -> list[str]:
    """The keys given on the command line, else those in ``CADRE_API_KEY`` (comma-separated)."""
    raw = explicit if explicit is not None else os.environ.get(ENV_VAR, "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def is_loopback(host: str) -> bool:
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiKeys:
    """The accepted keys; empty means no authentication (allowed on loopback only)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = [k.encode() for k in keys]
        for k in self._keys:
            if len(k) < 8:
                raise ConfigError("an API key must be at least 8 characters; pick a longer --api-key")

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def require_for(self, host: str) -> None:
        """Refuse to serve beyond localhost without a key."""
        if not self.enabled and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on {host!r} without an API key: pass --api-key KEY or set {ENV_VAR}"
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
                "missing API key: send 'Authorization: Bearer <key>' (the openai client's api_key)",
                code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not self.valid(token.strip()):
            raise APIError(
                401, "invalid API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
