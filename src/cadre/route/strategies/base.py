"""What every router strategy provides: a ``RouterKind`` (fit / load), and for embedding strategies a ``Head``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from cadre.route.protocol import Embedder, RouteDecision, Router

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from cadre.route.config import RouterSpec
    from cadre.route.data import Example

__all__ = ["Explanation", "Head", "Neighbor", "RouterKind", "SavableRouter", "log_softmax", "softmax"]


@dataclass
class Neighbor:
    """A training example close to the request (cosine similarity of the embeddings)."""

    text: str
    route: str | None
    similarity: float


@dataclass
class Explanation:
    """Why a router decided what it did: the decision and the nearest training examples."""

    decision: RouteDecision
    nearest: list[Neighbor] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SavableRouter(Router, Protocol):
    """A router cadre can fit, save into a directory, load back and explain."""

    kind: str

    def save(self, directory: Path) -> None: ...

    def explain(self, text: str, *, k: int = 5) -> Explanation: ...


@runtime_checkable
class RouterKind(Protocol):
    """One entry of the ``routers`` registry (entry-point group ``cadre.routers``)."""

    name: str

    def fit(
        self, examples: Sequence[Example], *, spec: RouterSpec, embedder: Embedder | None
    ) -> SavableRouter:
        """Build a router from labelled examples (``route`` None = out of scope)."""
        ...

    def load(self, directory: Path, manifest: dict[str, Any], *, embedder: Embedder | None) -> SavableRouter:
        """Rebuild a router saved by its ``save``; ``manifest`` is the parsed ``router.json``."""
        ...


class Head(Protocol):
    """A classifier over unit-length embeddings: rows in, one logit per route out."""

    name: ClassVar[str]

    def fit(self, x: NDArray[np.float32], y: NDArray[np.int64], n_routes: int) -> None: ...

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float64]: ...  # (n, n_routes)

    def state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]: ...  # arrays, JSON params


def softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax, stable for large logits."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def log_softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    out: NDArray[np.float64] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return out
