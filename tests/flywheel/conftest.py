"""Real servers for the flywheel's end-to-end test: llama-cpp-python's OpenAI server playing the hosted
generalist, and `cadre serve` (uvicorn in a thread) in front of it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hosted_generalist(tmp_path: Path) -> Iterator[str]:
    """llama_cpp.server on a free loopback port serving the bundled SmolLM2; yields its base URL."""
    from cadre.runtime.bundled import bundled_model_path

    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path("smollm2-135m")),
        "--model_alias", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "1024", "--n_threads", "1",
        "--interrupt_requests", "False",  # else each new request ends the one running, with an empty answer
    ]  # fmt: skip
    log = (tmp_path / "llama-server.log").open("w")  # a file: the load log would fill a pipe
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited: {(tmp_path / 'llama-server.log').read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
