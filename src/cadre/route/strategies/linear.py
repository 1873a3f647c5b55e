"""A trained linear head: multinomial logistic regression (scikit-learn) on the embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cadre.route.config import RouterSpec

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["LinearHead"]


class LinearHead:
    """``logits = x @ W.T + b``; trained with L2-regularised logistic regression, stored as plain arrays."""

    name: ClassVar[str] = "linear"

    def __init__(self, spec: RouterSpec) -> None:
        self.C = spec.C
        self.seed = spec.seed
        self.weight: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self.bias: NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def fit(self, x: NDArray[np.float32], y: NDArray[np.int64], n_routes: int) -> None:
        present = np.unique(y)
        if n_routes == 1 or len(present) == 1:
            self.weight = np.zeros((n_routes, x.shape[1]), dtype=np.float32)
            self.bias = np.zeros(n_routes, dtype=np.float32)
            self.bias[present[0]] = 1.0
            return
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        clf.fit(x, y)
        coef = clf.coef_.astype(np.float32)
        icpt = clf.intercept_.astype(np.float32)
        if coef.shape[0] == 1:  # binary: scikit-learn keeps one row for the positive class
            coef = np.concatenate([np.zeros_like(coef), coef])
            icpt = np.concatenate([np.zeros_like(icpt), icpt])
        self.weight = np.zeros((n_routes, x.shape[1]), dtype=np.float32)
        self.bias = np.full(n_routes, -1e4, dtype=np.float32)  # a route absent from this fold never wins
        self.weight[clf.classes_] = coef
        self.bias[clf.classes_] = icpt

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        return (x @ self.weight.T + self.bias).astype(np.float64)

    def state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        return {"weight": self.weight, "bias": self.bias}, {"C": self.C}

    @classmethod
    def from_state(
        cls, arrays: dict[str, NDArray[Any]], params: dict[str, Any], spec: RouterSpec
    ) -> LinearHead:
        head = cls(spec)
        head.C = float(params.get("C", spec.C))
        head.weight = np.ascontiguousarray(arrays["weight"], dtype=np.float32)
        head.bias = np.ascontiguousarray(arrays["bias"], dtype=np.float32)
        return head
