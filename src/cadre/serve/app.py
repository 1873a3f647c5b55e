"""The FastAPI app factory and the ``serve`` entry point.

All state lives on ``app.state`` (``gateway``, ``api_keys``), set up in :func:`create_app` and started in the
lifespan: the models load before the first request is accepted, and on shutdown in-flight requests finish
before the models are released. ``SIGHUP`` re-reads the ecosystem file (when the server runs in the main thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadre.ecosystem.spec import EcosystemSpec, load_ecosystem
from cadre.errors import CadreError, ConfigError
from cadre.serve import admin as admin_routes
from cadre.serve import chat, completions, embeddings, feedback, models, pipeline_routes
from cadre.serve.auth import ADMIN_ENV_VAR, ApiKeys
from cadre.serve.errors import APIError, error_response, install_error_handlers
from cadre.serve.guard import HostGuard
from cadre.serve.lifecycle import DrainingServer, bind_socket
from cadre.serve.pipelines import ServedPipelines
from cadre.serve.serving import Gateway

__all__ = ["check_keys", "create_app", "serve"]

log = logging.getLogger("cadre.serve")


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 (by Content-Length, and while reading)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        too_big = APIError(
            413, f"request body larger than {limit} bytes (server.max_request_bytes)", code="too_large"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(too_big)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, too_big.message)
            return message

        await self.app(scope, limited, send)


class _CountRequests:
    """Count requests by endpoint and status, and time them (to the end of the body, streams included).

    The endpoint label is a route template of this app (``/v1/models/{model_id}``) or ``other``: whatever paths
    clients send, the number of label values stays bounded (unauthenticated requests cannot grow /metrics).
    """

    def __init__(self, app: ASGIApp, gateway: Gateway, routes: list[tuple[re.Pattern[str], str]]) -> None:
        self.app = app
        self.gw = gateway
        self.routes = routes

    def endpoint(self, path: str) -> str:
        return next((name for pattern, name in self.routes if pattern.match(path)), "other")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.endpoint(scope.get("path", ""))
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.gw.draining:
                    # No keep-alive while draining: a client's next request opens a new connection, which the
                    # closed listener refuses cleanly, instead of racing the server closing an idle one.
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.gw.metrics.requests.labels(endpoint, str(status)).inc()
            self.gw.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)


def check_keys(spec: EcosystemSpec, api_keys: ApiKeys, admin_keys: ApiKeys) -> None:
    """Refuse an admin API without its own key, and an admin key that is also an inference key."""
    if spec.server.admin and not admin_keys.enabled:
        raise ConfigError(
            f"server.admin is true but no admin key is set: pass --admin-key KEY or set {ADMIN_ENV_VAR} (a key "
            "of its own, not the inference key), or set server.admin: false"
        )
    if admin_keys.overlaps(api_keys):
        raise ConfigError("the admin key must differ from every inference API key; pick another --admin-key")


def create_app(
    ecosystem: EcosystemSpec | str | Path,
    *,
    api_keys: ApiKeys | None = None,
    admin_keys: ApiKeys | None = None,
    gateway: Gateway | None = None,
    **gateway_kw: Any,
) -> FastAPI:
    """Build the server for an ecosystem (a spec, or the path of an ``ecosystem.yaml``).

    Args:
        ecosystem: the spec or its file (a file can be reloaded with SIGHUP or ``POST /admin/reload``).
        api_keys: accepted bearer keys (none: no authentication; only safe on localhost).
        admin_keys: the keys of the admin API (required when ``server.admin`` is true; never an inference key).
        gateway: a ready gateway (tests); by default one is built from the spec.
        gateway_kw: passed to :class:`Gateway` (``loader``, ``router_factory``, ``grounder``).

    Raises:
        ConfigError: the admin API is enabled without an admin key of its own.
    """
    spec_path: Path | None = None
    if isinstance(ecosystem, EcosystemSpec):
        spec = ecosystem
    else:
        spec_path = Path(ecosystem)
        spec = load_ecosystem(spec_path)
    keys, admin = api_keys or ApiKeys(), admin_keys or ApiKeys(kind="admin key")
    check_keys(spec, keys, admin)
    gw = gateway or Gateway(spec, spec_path=spec_path, **gateway_kw)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        hup = _install_sighup(gw)
        try:
            yield
        finally:
            if hup:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await gw.close()

    app = FastAPI(title="cadre", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gw
    app.state.pipelines = ServedPipelines(gw)
    app.state.api_keys = keys
    app.state.admin_keys = admin
    install_error_handlers(app)
    for module in (chat, completions, models, embeddings, feedback, pipeline_routes, admin_routes):
        app.include_router(module.router)
    app.add_middleware(_BodyLimit, limit=lambda: gw.current_spec.server.max_request_bytes)
    app.add_middleware(HostGuard, settings=lambda: gw.current_spec.server)

    known = [
        (r.path_regex, r.path)
        for module in (chat, completions, models, embeddings, feedback, pipeline_routes, admin_routes)
        for r in module.router.routes
        if isinstance(r, APIRoute)
    ]
    app.add_middleware(_CountRequests, gateway=gw, routes=known)
    return app


def _install_sighup(gw: Gateway) -> bool:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return False
    if gw.spec_path is None:
        return False
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        async def run() -> None:
            try:
                result = await gw.reload()
                log.info("SIGHUP: reloaded %s: %s", gw.spec_path, result)
            except CadreError as err:
                log.error("SIGHUP: reload failed, keeping the running ecosystem: %s", err)

        task = loop.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError):
        return False
    return True


def serve(
    ecosystem: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_keys: ApiKeys | None = None,
    admin_keys: ApiKeys | None = None,
    log_level: str = "info",
    sock: socket.socket | None = None,
    **gateway_kw: Any,
) -> None:
    """Run the server until SIGINT/SIGTERM, then drain (see :class:`~cadre.serve.lifecycle.DrainingServer`).

    The socket is bound (``sock``, or :func:`~cadre.serve.lifecycle.bind_socket`) before any model loads.
    ``gateway_kw`` go to :class:`Gateway` (e.g. ``shadow_agreement``).

    Raises:
        ConfigError: no key for a non-loopback host, an invalid or taken port, or the admin API without its key.
    """
    import uvicorn

    keys = api_keys or ApiKeys()
    keys.require_for(host)
    sock = sock or bind_socket(host, port)
    app = create_app(ecosystem, api_keys=keys, admin_keys=admin_keys, **gateway_kw)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        app,
        log_level=log_level,
        timeout_graceful_shutdown=5,  # the drain happened before uvicorn's own shutdown starts
        limit_concurrency=None,
        # longer than httpx's (so openai's) pooled-connection expiry of 5 s: the client drops an idle connection
        # first, instead of reusing one the server is closing at that moment (a connection reset)
        timeout_keep_alive=30,
    )
    DrainingServer(config, app.state.gateway).run(sockets=[sock])
