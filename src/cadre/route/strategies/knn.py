"""k nearest neighbours: similarity-weighted votes of the k most similar training examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cadre.route.config import RouterSpec

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["KNNHead"]


class KNNHead:
    """Logit of a route = log of its share of the (clipped) similarity mass among the k nearest examples."""

    name: ClassVar[str] = "knn"

    def __init__(self, spec: RouterSpec) -> None:
        self.k = spec.k
        self.bank: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self.labels: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.n_routes = 0

    def fit(self, x: NDArray[np.float32], y: NDArray[np.int64], n_routes: int) -> None:
        self.bank = np.ascontiguousarray(x, dtype=np.float32)
        self.labels = y.astype(np.int64)
        self.n_routes = n_routes

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        sims = x @ self.bank.T  # (n, N)
        k = min(self.k, sims.shape[1])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (n, k) unordered top-k
        top = np.take_along_axis(sims, idx, axis=1).clip(min=0.0).astype(np.float64)
        votes = np.zeros((x.shape[0], self.n_routes), dtype=np.float64)
        np.add.at(votes, (np.arange(x.shape[0])[:, None], self.labels[idx]), top)
        eps = 1e-3
        share = (votes + eps) / (votes.sum(axis=1, keepdims=True) + eps * self.n_routes)
        out: NDArray[np.float64] = np.log(share)
        return out

    def state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        return {"bank": self.bank, "labels": self.labels}, {"k": self.k, "n_routes": self.n_routes}

    @classmethod
    def from_state(cls, arrays: dict[str, NDArray[Any]], params: dict[str, Any], spec: RouterSpec) -> KNNHead:
        head = cls(spec)
        head.k = int(params["k"])
        head.n_routes = int(params["n_routes"])
        head.bank = np.ascontiguousarray(arrays["bank"], dtype=np.float32)
        head.labels = arrays["labels"].astype(np.int64)
        return head
