"""The out-of-domain gate: a score of how in-domain a request is, a conformal p-value, and a threshold.

Three in-domain scores are computed: the similarity to the nearest training examples of the closest route (a
kNN OOD detector, Sun et al. 2022, "Out-of-Distribution Detection with Deep Nearest Neighbors"); minus the
smallest Mahalanobis distance to a route mean under one shared covariance (Lee et al. 2018, "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks"; the covariance is Ledoit-Wolf
shrunk, Ledoit & Wolf 2004, because routes have few examples per dimension); and the head's energy,
``logsumexp`` of its logits (Liu et al. 2020, "Energy-based Out-of-distribution Detection"). Without
out-of-scope examples, the gate uses the one that best separates a route held out of training, as if it were
out of scope, from the other routes' held-out examples (``select_score``), among the three alone and their sums
(each standardised by its held-out in-domain mean and spread; ``COMBINED``); with out-of-scope examples, a
logistic regression weighs them all, the route probability and the similarity to those examples.
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

__all__ = [
    "COMBINED",
    "FEATURES",
    "SCORES",
    "GateView",
    "Mahalanobis",
    "OODGate",
    "attainable_alpha",
    "conformal_p_values",
    "fit_gate",
    "route_similarity",
    "route_similarity_matrix",
    "score_features",
    "select_score",
]

FEATURES = ("knn_similarity", "route_probability", "out_of_scope_similarity", "mahalanobis", "energy")
SCORES = {"knn": "knn_similarity", "mahalanobis": "mahalanobis", "energy": "energy"}
"""The distance-based in-domain scores the gate can use alone (``RouterSpec.ood_score``), by feature name."""
COMBINED = {
    "knn+energy": ("knn", "energy"),
    "knn+mahalanobis": ("knn", "mahalanobis"),
    "mahalanobis+energy": ("mahalanobis", "energy"),
    "knn+mahalanobis+energy": ("knn", "mahalanobis", "energy"),
}
"""Sums of the scores above, each standardised by its held-out in-domain mean and standard deviation (a request
must look in-domain by several measures at once); ``select_score`` weighs them against the single scores."""


def score_features(name: str) -> list[str]:
    """The gate features of an ``ood_score`` name (one of ``SCORES`` or ``COMBINED``)."""
    return [SCORES[part] for part in COMBINED.get(name, (name,))]


def route_similarity_matrix(
    sims: NDArray[np.float32], labels: NDArray[np.int64], n_routes: int, k: int
) -> NDArray[np.float64]:
    """(n, n_routes): the mean similarity of each request to each route's ``k`` nearest examples (-1: none)."""
    out = np.full((sims.shape[0], n_routes), -1.0, dtype=np.float64)
    for r in range(n_routes):
        cols = sims[:, labels == r]  # (n, N_r)
        if cols.shape[1] == 0:
            continue
        kk = min(k, cols.shape[1])
        out[:, r] = (-np.partition(-cols, kk - 1, axis=1)[:, :kk]).mean(axis=1)
    return out


def route_similarity(
    sims: NDArray[np.float32], labels: NDArray[np.int64], n_routes: int, k: int
) -> NDArray[np.float64]:
    """For each row: the best, over routes, of the mean similarity to that route's ``k`` nearest examples.

    Args:
        sims: (n, N) cosine similarities of n requests to N training examples.
        labels: (N,) route index of each training example.
    """
    out: NDArray[np.float64] = route_similarity_matrix(sims, labels, n_routes, k).max(axis=1)
    return out


class Mahalanobis:
    """Route means and one shared (Ledoit-Wolf shrunk) precision matrix; score = -min over routes of the
    squared Mahalanobis distance (Lee et al. 2018)."""

    def __init__(self, means: NDArray[np.float64], precision: NDArray[np.float64]) -> None:
        self.means = np.asarray(means, dtype=np.float64)
        self.precision = np.asarray(precision, dtype=np.float64)
        self._mpm = np.einsum("rd,de,re->r", self.means, self.precision, self.means)

    @classmethod
    def fit(cls, x: NDArray[np.float32], y: NDArray[np.int64], n_routes: int) -> Mahalanobis:
        from sklearn.covariance import LedoitWolf

        x64 = x.astype(np.float64)
        means = np.zeros((n_routes, x.shape[1]), dtype=np.float64)
        for r in range(n_routes):
            rows = x64[y == r]
            means[r] = rows.mean(axis=0) if len(rows) else np.inf  # an absent route is never nearest
        present = np.isfinite(means[:, 0])
        centred = x64 - np.where(present[y, None], means[y], 0.0)
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        means[~present] = 1e6
        return cls(means, precision)

    def route_scores(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        """(n, n_routes): minus the squared Mahalanobis distance of each request to each route mean."""
        x64 = x.astype(np.float64)
        xp = x64 @ self.precision
        d2 = (xp * x64).sum(axis=1)[:, None] - 2.0 * xp @ self.means.T + self._mpm[None, :]
        out: NDArray[np.float64] = -d2
        return out

    def score(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = self.route_scores(x).max(axis=1)
        return out

    def state(self) -> dict[str, NDArray[np.float64]]:
        return {"maha.means": self.means, "maha.precision": self.precision}


@dataclass
class GateView:
    """What the gate scores a request against: the fold-0 fit (bank rows and out-of-scope rows outside fold 0,
    Mahalanobis fitted without fold 0), like the held-out scores its threshold was calibrated on. Scored
    against the full bank, requests would look more in-domain than the calibration did and the gate would keep
    more than ``1 - alpha`` of in-scope traffic."""

    bank_mask: NDArray[np.bool_]
    ood_mask: NDArray[np.bool_]
    maha: Mahalanobis

    def state(self) -> dict[str, NDArray[Any]]:
        return {
            "gate.bank_mask": self.bank_mask.astype(np.uint8),
            "gate.ood_mask": self.ood_mask.astype(np.uint8),
            "gate.maha.means": self.maha.means,
            "gate.maha.precision": self.maha.precision,
        }

    @classmethod
    def from_state(cls, arrays: dict[str, NDArray[Any]]) -> GateView | None:
        if "gate.bank_mask" not in arrays:
            return None  # saved before the gate had its own view
        return cls(
            bank_mask=arrays["gate.bank_mask"].astype(bool),
            ood_mask=arrays["gate.ood_mask"].astype(bool),
            maha=Mahalanobis(arrays["gate.maha.means"], arrays["gate.maha.precision"]),
        )


def energy(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """``logsumexp`` of each row of logits (the negative free energy, Liu et al. 2020): higher = more in-domain."""
    m = logits.max(axis=1, keepdims=True)
    out: NDArray[np.float64] = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    return out


def select_score(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    train: NDArray[np.bool_],
    test: NDArray[np.bool_],
    *,
    n_routes: int,
    k: int,
    make_head: Any,
) -> tuple[str, dict[str, float]]:
    """Pick the in-domain score that best detects a route never seen, without out-of-scope data.

    Each route in turn is removed from the ``train`` rows (the head refitted without it, the Mahalanobis means
    and covariance recomputed); its ``test`` rows play "out of scope", the other routes' ``test`` rows
    "in scope". The score's AUROC is averaged over routes (the open-intent protocol simulated on the user's
    data). The ``COMBINED`` sums standardise each part by the in-scope rows' mean and standard deviation, as the
    gate does with its calibration scores. Ties go to the first of ``SCORES``, then of ``COMBINED``.
    """
    from cadre.route.evaluation import auroc

    names = [*SCORES, *COMBINED]
    aucs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(n_routes):
        keep = train & (y != r)
        lab = y[test] != r
        if not keep.any() or lab.all():
            continue
        compact = np.cumsum(np.bincount(y[keep], minlength=n_routes) > 0) - 1  # route -> index without r
        yk = compact[y[keep]].astype(np.int64)
        n_kept = int(yk.max()) + 1
        xt = x[test]
        head = make_head()
        head.fit(x[keep], yk, n_kept)
        scores = {
            "knn": route_similarity(xt @ x[keep].T, yk, n_kept, k),
            "mahalanobis": Mahalanobis.fit(x[keep], yk, n_kept).score(xt),
            "energy": energy(head.logits(xt)),
        }
        z = {n: (v - v[lab].mean()) / max(float(v[lab].std()), 1e-12) for n, v in scores.items()}
        scores.update({name: np.sum([z[p] for p in parts], axis=0) for name, parts in COMBINED.items()})
        for name, s in scores.items():
            a = auroc(s, lab)
            if a is not None:
                aucs[name].append(a)
    result = {name: float(np.mean(v)) if v else 0.5 for name, v in aucs.items()}
    best = max(result, key=lambda n: (result[n], -names.index(n)))
    return best, result


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
    weights: list[float] | None = None  # logistic-regression weights over standardised ``features``, or None
    bias: float = 0.0
    mean: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    scale: list[float] = field(default_factory=lambda: [1.0] * len(FEATURES))
    features: list[str] = field(default_factory=lambda: [FEATURES[0]])  # the FEATURES the score uses

    def _columns(self, feats: NDArray[np.float64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = feats[:, [FEATURES.index(f) for f in self.features]].astype(np.float64)
        return out

    def score(self, feats: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, len(FEATURES)) -> (n,) in-domain score, higher = more in-domain."""
        cols = self._columns(feats)
        if self.weights is None:
            out: NDArray[np.float64] = cols[:, 0]
            return out
        z = (cols - np.asarray(self.mean)) / np.asarray(self.scale)
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
            "features": list(self.features),
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
            features=list(params.get("features") or [FEATURES[0]]),
        )


def fit_gate(
    in_feats: NDArray[np.float64],
    out_feats: NDArray[np.float64] | None,
    *,
    in_labels: NDArray[np.int64],
    alpha: float | None,
    k: int,
    score: str | list[str] = FEATURES[0],
    seed: int = 0,
) -> OODGate:
    """Fit the gate from held-out (out-of-fold) features of in-domain and, if any, out-of-scope examples.

    ``in_labels`` is the predicted (out-of-fold) route of each in-domain example, for per-route p-values;
    ``score`` the feature used when there are no out-of-scope examples, or several: their sum, each standardised
    by its mean and standard deviation over ``in_feats``.

    A conformal p-value is at least 1/(n+1) for n calibration scores, so with fewer than 1/alpha - 1 in-domain
    examples the gate could never fire. When out-of-scope examples show that a gate is wanted, alpha is then
    raised to that floor (the gate flags what scores below every in-domain example); :func:`attainable_alpha`.
    """
    parts = [score] if isinstance(score, str) else list(score)
    gate = OODGate(alpha=alpha, k=k, calib=np.zeros(0), features=parts)
    if len(parts) > 1:
        cols = gate._columns(in_feats)
        gate.weights = [1.0] * len(parts)
        gate.mean = [float(m) for m in cols.mean(axis=0)]
        gate.scale = [float(v) for v in np.maximum(cols.std(axis=0), 1e-12)]
    with_oos = out_feats is not None and out_feats.shape[0] >= 2
    alpha = attainable_alpha(alpha, len(in_feats)) if with_oos else alpha
    if out_feats is not None and with_oos:
        from sklearn.linear_model import LogisticRegression

        gate.features = list(FEATURES)
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
        features=gate.features,
    )


def attainable_alpha(alpha: float | None, n_calibration: int) -> float | None:
    """``alpha``, or the smallest level conformal p-values over ``n_calibration`` scores reach (1/(n+1))."""
    if alpha is None or n_calibration <= 0:
        return alpha
    return max(alpha, 1.0 / (n_calibration + 1.0))


ALPHA_GRID = tuple(round(a, 3) for a in np.arange(0.005, 0.5001, 0.005))
"""The gate thresholds (conformal ``alpha``) a threshold in the user's words chooses between."""


def choose_alpha(
    gate: OODGate,
    in_feats: NDArray[np.float64],
    out_feats: NDArray[np.float64] | None,
    *,
    in_pred: NDArray[np.int64],
    in_correct: NDArray[np.bool_],
    out_pred: NDArray[np.int64] | None,
    min_in_scope_accuracy: float | None = None,
    max_generalist_share: float | None = None,
) -> tuple[float | None, dict[str, Any]]:
    """The gate's ``alpha`` for a target in the user's words, chosen on held-out (out-of-fold) scores.

    "keep in-scope accuracy >= X": the largest alpha (most requests to the generalist) whose held-out in-scope
    accuracy (right specialist and not sent away) stays >= X. "send at most Y to the generalist": the largest
    alpha whose held-out share of the labelled examples sent to the generalist stays <= Y. None = gate off
    (only when that is what it takes to meet the target).

    Raises:
        DataError: the target cannot be met even with the gate off (in-scope accuracy above the head's).
    """
    from cadre.errors import DataError

    n_in = len(in_feats)
    n_out = 0 if out_feats is None else len(out_feats)
    best: tuple[float | None, dict[str, Any]] | None = None
    for a in ALPHA_GRID:
        g = OODGate.from_params({**gate.params(), "alpha": a}, gate.calib, gate.calib_labels)
        kept = ~g.is_out(g.p_values(g.score(in_feats), in_pred))
        sent_out = 0
        if out_feats is not None and out_pred is not None and n_out:
            sent_out = int(g.is_out(g.p_values(g.score(out_feats), out_pred)).sum())
        est: dict[str, Any] = {
            "in_scope_accuracy": float((in_correct & kept).mean()),
            "in_scope_kept": float(kept.mean()),
            "generalist_share": float(((~kept).sum() + sent_out) / (n_in + n_out)),
            "oos_recall": float(sent_out / n_out) if n_out else None,
        }
        ok = (
            est["in_scope_accuracy"] >= min_in_scope_accuracy
            if min_in_scope_accuracy is not None
            else est["generalist_share"] <= (max_generalist_share or 0.0)
        )
        if not ok:
            break
        best = (float(a), est)
    if best is not None:
        return best
    off: dict[str, Any] = {
        "in_scope_accuracy": float(in_correct.mean()),
        "in_scope_kept": 1.0,
        "generalist_share": 0.0,
        "oos_recall": 0.0 if n_out else None,
    }
    if min_in_scope_accuracy is not None and off["in_scope_accuracy"] < min_in_scope_accuracy:
        raise DataError(
            f"in-scope accuracy >= {min_in_scope_accuracy} cannot be kept: the router's held-out accuracy is "
            f"{off['in_scope_accuracy']:.3f} even with the gate off; ask for at most that, or add examples"
        )
    return None, off
