"""Nearest centroid: one mean embedding per route; the logit is the cosine similarity to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cadre.route.config import RouterSpec

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["CentroidHead"]


class CentroidHead:
    """Cosine similarity to each route's (re-normalised) mean embedding."""

    name: ClassVar[str] = "centroid"

    def __init__(self, spec: RouterSpec) -> None:
        self.centroids: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    def fit(self, x: NDArray[np.float32], y: NDArray[np.int64], n_routes: int) -> None:
        c = np.stack([x[y == r].mean(axis=0) for r in range(n_routes)])
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        self.centroids = c.astype(np.float32)

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        return (x @ self.centroids.T).astype(np.float64)  # (n, R) cosine similarities

    def state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        return {"centroids": self.centroids}, {}

    @classmethod
    def from_state(
        cls, arrays: dict[str, NDArray[Any]], params: dict[str, Any], spec: RouterSpec
    ) -> CentroidHead:
        head = cls(spec)
        head.centroids = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
        return head
