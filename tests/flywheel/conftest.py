"""Real servers for the flywheel's end-to-end test: llama-cpp-python's OpenAI server playing the hosted
generalist, and `cadre serve` (uvicorn in a thread) in front of it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def hosted_generalist(tmp_path: Path, start_llama_server: Any) -> Iterator[str]:
    """llama_cpp.server on a free loopback port serving the bundled SmolLM2; yields its base URL."""
    from cadre.runtime.bundled import bundled_model_path

    with start_llama_server(
        bundled_model_path("smollm2-135m"), tmp_path / "llama-server.log", n_ctx=1024
    ) as url:
        yield url


class Gateway:
    """`cadre serve ecosystem.yaml` in this process (uvicorn thread) on a free loopback port."""

    def __init__(self, ecosystem: Path, *, admin_key: str) -> None:
        import uvicorn

        from cadre.serve.app import create_app
        from cadre.serve.auth import ApiKeys

        self.app = create_app(ecosystem, admin_keys=ApiKeys([admin_key], kind="admin key"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("cadre serve did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()
