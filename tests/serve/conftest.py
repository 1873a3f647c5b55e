"""A real uvicorn server on a free loopback port, in a thread, driven over the socket by the openai client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from cadre.serve import EcosystemSpec, parse_ecosystem
from cadre.serve.app import create_app
from cadre.serve.auth import ApiKeys
from cadre.serve.lifecycle import DrainingServer


class LiveServer:
    """``create_app(spec)`` served by uvicorn on 127.0.0.1:<free port> until :meth:`stop`."""

    def __init__(
        self,
        spec: EcosystemSpec,
        *,
        api_keys: list[str] | None = None,
        drain_s: float | None = None,
        **app_kw: Any,
    ) -> None:
        """``drain_s``: run :class:`DrainingServer` (stop it with ``server.start_draining()``)."""
        self.app = create_app(spec, api_keys=ApiKeys(api_keys or []), **app_kw)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=10, lifespan="on")
        self.server = (
            uvicorn.Server(config)
            if drain_s is None
            else DrainingServer(config, self.app.state.gateway, drain_s=drain_s)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def start(self, timeout: float = 180.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died while starting (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def small_spec(**overrides: Any) -> EcosystemSpec:
    """Two specialists over the bundled SmolLM2 (no adapters: bare base + system prompt) and a local generalist."""
    data: dict[str, Any] = {
        "specialists": [
            {
                "name": "support",
                "base": "smollm2-135m",
                "description": "customer support",
                "system_prompt": "You are a customer-support agent.",
                "decoding": {"max_tokens": 8},
            },
            {
                "name": "invoices",
                "base": "smollm2-135m",
                "description": "invoice fields",
                "system_prompt": "Extract the invoice fields as JSON.",
                "decoding": {"max_tokens": 8},
            },
        ],
        "generalist": {"model": "smollm2-135m", "decoding": {"max_tokens": 8}},
        "server": {"max_tokens_limit": 64, "max_prompt_chars": 2000, "max_request_bytes": 20_000},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_ecosystem(data, source="test")


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    """One server for a whole test module (loading the model once)."""
    with LiveServer(small_spec(server={"queue_size": 4}), api_keys=["test-key-123"]) as server:
        yield server
