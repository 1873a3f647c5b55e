"""Shared helpers for the `cadre serve` benchmarks (not a benchmark itself): a free port, and `cadre serve` as a
real process, returned once its /health answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["free_port", "start_cadre"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_in_thread(app: Any) -> tuple[Any, threading.Thread, int]:
    """Serve the ASGI ``app`` with uvicorn in a daemon thread of this process on a free loopback port; returns
    (server, thread, port) once it accepts connections. Stop it with ``server.should_exit = True``."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", timeout_keep_alive=30))  # as `cadre serve`
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, port


def start_cadre(
    eco: Path, port: int, env: dict[str, str] | None = None, *, log_level: str = "warning", **popen: Any
) -> subprocess.Popen[bytes]:
    """`cadre serve eco --port port` with ``env`` added to this environment; waits up to 300 s for /health."""
    code = "from cadre.cli.main import main; main()"
    args = [sys.executable, "-c", code, "serve", str(eco), "--port", str(port), "--log-level", log_level]
    proc: subprocess.Popen[bytes] = subprocess.Popen(args, env={**os.environ, **(env or {})}, **popen)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server on port {port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start in 300 s")
