"""The out-of-domain gate: a score of how in-domain a request is, a conformal p-value, and a threshold.

The score is the similarity to the nearest training examples of the closest route (a kNN OOD detector, Sun et
al. 2022, "Out-of-Distribution Detection with Deep Nearest Neighbors"); when the user supplies out-of-scope
examples, a logistic regression also weighs the route probability and the similarity to those examples.
The threshold is set without any out-of-scope data: the conformal p-value of a request's score against
held-out in-domain scores (Bates et al. 2023, "Testing for outliers with conformal p-values") is at most
``alpha`` for at most an ``alpha`` share of in-domain requests, so ``p <= alpha`` -> generalist caps the share
of in-domain traffic the gate wrongly sends away. P-values are per predicted route (Mondrian conformal, Vovk et
al. 2005) when that route has enough held-out examples to reject at ``alpha`` at all, else pooled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["FEATURES", "OODGate", "conformal_p_values", "fit_gate", "route_similarity"]

FEATURES = ("knn_similarity", "route_probability", "out_of_scope_similarity")


def route_similarity(
    sims: NDArray[np.float32], labels: NDArray[np.int64], n_routes: int, k: int
) -> NDArray[np.float64]:
    """For each row: the best, over routes, of the mean similarity to that route's ``k`` nearest examples.

    Args:
        sims: (n, N) cosine similarities of n requests to N training examples.
        labels: (N,) route index of each training example.
    """
    best = np.full(sims.shape[0], -1.0, dtype=np.float64)
    for r in range(n_routes):
        cols = sims[:, labels == r]  # (n, N_r)
        if cols.shape[1] == 0:
            continue
        kk = min(k, cols.shape[1])
        top = -np.partition(-cols, kk - 1, axis=1)[:, :kk]
        best = np.maximum(best, top.mean(axis=1))
    return best


def conformal_p_values(calib_sorted: NDArray[np.float64], scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """p = (1 + #{calibration scores <= s}) / (n + 1): small when s is lower than almost all in-domain scores."""
    n = calib_sorted.shape[0]
    below = np.searchsorted(calib_sorted, scores, side="right")
    out: NDArray[np.float64] = (1.0 + below) / (n + 1.0)
    return out


@dataclass
class OODGate:
    """Scores requests, turns scores into conformal p-values, and flags ``p <= alpha`` as out of domain."""

    alpha: float | None
    k: int
    calib: NDArray[np.float64]  # sorted in-domain held-out scores
    calib_labels: NDArray[np.int64] | None = None  # route of each calibration score (same order as calib)
    weights: list[float] | None = None  # logistic-regression weights over standardised FEATURES, or None
    bias: float = 0.0
    mean: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    scale: list[float] = field(default_factory=lambda: [1.0] * len(FEATURES))

    def score(self, feats: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, len(FEATURES)) -> (n,) in-domain score, higher = more in-domain."""
        if self.weights is None:
            out: NDArray[np.float64] = feats[:, 0].astype(np.float64)
            return out
        z = (feats - np.asarray(self.mean)) / np.asarray(self.scale)
        lin: NDArray[np.float64] = z @ np.asarray(self.weights) + self.bias
        return lin

    def __post_init__(self) -> None:
        self._by_route: dict[int, NDArray[np.float64]] = {}
        if self.calib_labels is not None and self.alpha is not None:
            need = int(np.ceil(2.0 / self.alpha))  # with fewer, p = 1/(n+1) can barely reach alpha
            for r in np.unique(self.calib_labels):
                vals = self.calib[self.calib_labels == r]
                if len(vals) >= need:
                    self._by_route[int(r)] = np.sort(vals)
        self._pooled = np.sort(self.calib)

    def p_values(
        self, scores: NDArray[np.float64], routes: NDArray[np.int64] | None = None
    ) -> NDArray[np.float64]:
        """Conformal p-values of ``scores``; ``routes`` (predicted route per row) selects per-route calibration."""
        out = conformal_p_values(self._pooled, scores)
        if routes is not None and self._by_route:
            for r, cal in self._by_route.items():
                mask = routes == r
                if mask.any():
                    out[mask] = conformal_p_values(cal, scores[mask])
        return out

    def is_out(self, p: NDArray[np.float64]) -> NDArray[np.bool_]:
        if self.alpha is None:
            return np.zeros(p.shape, dtype=bool)
        out: NDArray[np.bool_] = p <= self.alpha
        return out

    def params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "k": self.k,
            "features": list(FEATURES) if self.weights is not None else [FEATURES[0]],
            "weights": self.weights,
            "bias": self.bias,
            "mean": self.mean,
            "scale": self.scale,
        }

    @classmethod
    def from_params(
        cls, params: dict[str, Any], calib: NDArray[Any], calib_labels: NDArray[Any] | None = None
    ) -> OODGate:
        return cls(
            alpha=params["alpha"],
            k=int(params["k"]),
            calib=calib.astype(np.float64),
            calib_labels=None if calib_labels is None else calib_labels.astype(np.int64),
            weights=params.get("weights"),
            bias=float(params.get("bias", 0.0)),
            mean=list(params.get("mean", [0.0] * len(FEATURES))),
            scale=list(params.get("scale", [1.0] * len(FEATURES))),
        )


def fit_gate(
    in_feats: NDArray[np.float64],
    out_feats: NDArray[np.float64] | None,
    *,
    in_labels: NDArray[np.int64],
    alpha: float | None,
    k: int,
    seed: int = 0,
) -> OODGate:
    """Fit the gate from held-out (out-of-fold) features of in-domain and, if any, out-of-scope examples.

    ``in_labels`` is the predicted (out-of-fold) route of each in-domain example, for per-route p-values.
    """
    gate = OODGate(alpha=alpha, k=k, calib=np.zeros(0))
    if out_feats is not None and out_feats.shape[0] >= 2:
        from sklearn.linear_model import LogisticRegression

        allf = np.concatenate([in_feats, out_feats])
        mean = allf.mean(axis=0)
        scale = np.maximum(allf.std(axis=0), 1e-6)
        y = np.concatenate([np.ones(len(in_feats)), np.zeros(len(out_feats))])
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=seed)
        clf.fit((allf - mean) / scale, y)
        gate.weights = [float(w) for w in clf.coef_[0]]
        gate.bias = float(clf.intercept_[0])
        gate.mean = [float(m) for m in mean]
        gate.scale = [float(s) for s in scale]
    return OODGate(
        alpha=alpha,
        k=k,
        calib=gate.score(in_feats),
        calib_labels=in_labels.astype(np.int64),
        weights=gate.weights,
        bias=gate.bias,
        mean=gate.mean,
        scale=gate.scale,
    )
