"""The Router extension point: text (or a conversation) in, a route decision out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cadre.runtime.protocol import ChatMessage

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["GENERALIST", "Embedder", "RouteDecision", "Router"]

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
    in_domain: float | None = None  # out-of-domain detector score (higher = more in-domain); None if none


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows (``cadre.runtime.embeddings.get_embedder()`` is one)."""

    model_id: str

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> NDArray[np.float32]: ...


@runtime_checkable
class Router(Protocol):
    """Decides which specialist answers a request."""

    routes: list[str]  # the specialist names this router can return (GENERALIST is always possible)

    def route(self, text: str) -> RouteDecision: ...

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]: ...

    def route_chat(self, messages: Sequence[ChatMessage], *, current: str | None = None) -> RouteDecision: ...
