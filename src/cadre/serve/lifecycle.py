"""The listening socket and the server's life: bind first, load models second, drain on SIGTERM.

* :func:`bind_socket` validates the port and binds before any model loads, so a taken port fails in
  milliseconds with a clear message instead of after the models have loaded.
* :class:`DrainingServer` is uvicorn's server with a graceful shutdown that keeps the listener open: on the first
  SIGTERM/SIGINT the gateway starts draining (new requests get 503 with ``Retry-After``, ``/health`` says
  ``draining``), requests in flight finish for up to ``server.drain_timeout_s``, then whatever is still running
  is ended with a clean error (streams get an error event and ``[DONE]``), and only then does uvicorn close the
  listener and exit. A second signal exits at once (uvicorn's own behaviour).
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from types import FrameType

import uvicorn

from cadre.errors import ConfigError
from cadre.serve.serving import Gateway

__all__ = ["DrainingServer", "bind_socket", "check_port"]

log = logging.getLogger("cadre.serve")

_FLUSH_S = 2.0  # after ending the requests still running, time for their last bytes to reach the clients


def check_port(port: int) -> int:
    """A TCP port number (0 asks the system for a free one)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port {port!r} is not a TCP port: pick one in 1..65535 (or 0 for any free port)")
    return port


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, ready for uvicorn (``Server.run(sockets=[...])``).

    Raises:
        ConfigError: the port is invalid, already in use, or the host cannot be bound.
    """
    check_port(port)
    name = host.strip("[]")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as err:
        raise ConfigError(f"cannot resolve host {host!r}: {err}; pass an IP address with --host") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host!r} is already in use: stop the other server or pick another --port"
            ) from None
        raise ConfigError(f"cannot listen on {host!r} port {port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining the gateway on the first shutdown signal before it closes the listener."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway, *, drain_s: float | None = None) -> None:
        super().__init__(config)
        self.gateway = gateway
        self._drain_s = drain_s
        self._drain_started: float | None = None
        self._aborted_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_started is None and not self.should_exit:
            self._captured_signals.append(sig)
            self.start_draining()
            return
        super().handle_exit(sig, frame)  # a second signal: exit now

    def start_draining(self) -> None:
        """Stop admitting requests; the listener stays open to answer 503 until the drain ends."""
        self._drain_started = time.monotonic()
        self.gateway.draining = True
        log.info(
            "draining: %d request(s) in flight get up to %.0f s to finish; new ones get 503",
            self.gateway.admission.active,
            self.drain_s,
        )

    @property
    def drain_s(self) -> float:
        return self.gateway.current_spec.server.drain_timeout_s if self._drain_s is None else self._drain_s

    async def on_tick(self, counter: int) -> bool:
        if self._drain_started is not None and not self.should_exit:
            now = time.monotonic()
            if self.gateway.admission.active == 0:
                self.should_exit = True
            elif self._aborted_at is None and now - self._drain_started >= self.drain_s:
                n = self.gateway.abort_in_flight("the server shut down before the answer was complete")
                log.warning("drain timeout: ended %d request(s) still running", n)
                self._aborted_at = now
            elif self._aborted_at is not None and now - self._aborted_at >= _FLUSH_S:
                self.should_exit = True
        return await super().on_tick(counter)
