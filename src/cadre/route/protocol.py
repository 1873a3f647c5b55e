"""The Router extension point: text (or a conversation) in, a route decision out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cadre.runtime.protocol import ChatMessage

__all__ = ["GENERALIST", "RouteDecision", "Router"]

GENERALIST = "generalist"
"""The route name meaning "no specialist should answer this; send it to the generalist"."""


@dataclass
class RouteDecision:
    """Where a request goes and why."""

    route: str  # a specialist name, or GENERALIST
    score: float  # confidence in ``route`` (higher is more confident), in [0, 1] where calibrated
    reason: str = ""  # short, human-readable: "nearest-centroid 0.83 >= 0.41" / "out of domain"
    scores: dict[str, float] = field(default_factory=dict)  # per-route scores, when the router has them
    seconds: float = 0.0  # time spent deciding (embedding included)


@runtime_checkable
class Router(Protocol):
    """Decides which specialist answers a request."""

    routes: list[str]  # the specialist names this router can return (GENERALIST is always possible)

    def route(self, text: str) -> RouteDecision: ...

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]: ...

    def route_chat(self, messages: Sequence[ChatMessage], *, current: str | None = None) -> RouteDecision: ...
