"""The FastAPI app factory and the ``serve`` entry point.

All state lives on ``app.state`` (``gateway``, ``api_keys``), set up in :func:`create_app` and started in the
lifespan: the models load before the first request is accepted, and on shutdown in-flight requests finish
before the models are released. ``SIGHUP`` re-reads the ecosystem file (when the server runs in the main thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadre.errors import CadreError
from cadre.serve import admin, chat, completions, embeddings, models
from cadre.serve.auth import ApiKeys
from cadre.serve.errors import APIError, error_response, install_error_handlers
from cadre.serve.serving import Gateway
from cadre.serve.spec import EcosystemSpec, load_ecosystem

__all__ = ["create_app", "serve"]

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
    """Count requests by endpoint and status, and time them (to the end of the body, streams included)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        endpoint = path if path.startswith(("/v1/", "/admin/", "/health", "/metrics")) else "other"
        if endpoint.startswith("/v1/models/"):
            endpoint = "/v1/models/{id}"
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.gw.metrics.requests.labels(endpoint, str(status)).inc()
            self.gw.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)


def create_app(
    ecosystem: EcosystemSpec | str | Path,
    *,
    api_keys: ApiKeys | None = None,
    gateway: Gateway | None = None,
    **gateway_kw: Any,
) -> FastAPI:
    """Build the server for an ecosystem (a spec, or the path of an ``ecosystem.yaml``).

    Args:
        ecosystem: the spec or its file (a file can be reloaded with SIGHUP or ``POST /admin/reload``).
        api_keys: accepted bearer keys (none: no authentication; only safe on localhost).
        gateway: a ready gateway (tests); by default one is built from the spec.
        gateway_kw: passed to :class:`Gateway` (``loader``, ``router_factory``, ``grounder``).
    """
    spec_path: Path | None = None
    if isinstance(ecosystem, EcosystemSpec):
        spec = ecosystem
    else:
        spec_path = Path(ecosystem)
        spec = load_ecosystem(spec_path)
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
    app.state.api_keys = api_keys or ApiKeys()
    install_error_handlers(app)
    for module in (chat, completions, models, embeddings, admin):
        app.include_router(module.router)
    app.add_middleware(_BodyLimit, limit=lambda: gw.current_spec.server.max_request_bytes)

    app.add_middleware(_CountRequests, gateway=gw)
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
    log_level: str = "info",
    graceful_s: float = 30.0,
) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests get ``graceful_s`` to finish."""
    import uvicorn

    keys = api_keys or ApiKeys()
    keys.require_for(host)
    app = create_app(ecosystem, api_keys=keys)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=int(graceful_s),
        limit_concurrency=None,
    )
    uvicorn.Server(config).run()
