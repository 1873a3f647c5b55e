"""Cross-fitting: held-out (out-of-fold) head logits and gate features, per encoder.

Each fold ``f`` has its own embedding of every example (``FoldSpace``): with the frozen encoder it is the same
matrix for every fold; with a fine-tuned encoder it comes from an encoder fine-tuned without fold ``f``, so the
held-out scores of fold ``f`` are honest in both cases. Out-of-scope examples are dealt into folds too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.route.config import RouterSpec
from cadre.route.ood import FEATURES, Mahalanobis, energy, route_similarity_matrix, select_score
from cadre.route.strategies.base import log_softmax, softmax

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["CrossFit", "FoldSpace", "cross_fit", "fit_temperature", "fold_ids"]

_KNN, _PROB, _OOS, _MAHA, _ENERGY = (FEATURES.index(f) for f in FEATURES)


@dataclass
class FoldSpace:
    """Per fold: embeddings of the in-domain examples (n_in, d) and of the out-of-scope ones (n_oos, d)."""

    xs: list[NDArray[np.float32]]
    xos: list[NDArray[np.float32]]


@dataclass
class CrossFit:
    """What the held-out scores say: the best head, its calibration, the gate's features."""

    accuracy: dict[str, float]
    chosen: str
    temperature: float
    probs: NDArray[np.float64]  # (n_in, R) calibrated out-of-fold route probabilities of the chosen head
    in_feats: NDArray[np.float64]  # (n_in, len(FEATURES)) out-of-fold gate features
    out_feats: NDArray[np.float64] | None  # (n_oos, len(FEATURES)) or None without out-of-scope examples
    score_auroc: dict[str, float] = field(default_factory=dict)  # leave-one-route-out AUROC per OOD score
    ood_score: str = "knn"
    gate_head: Any = None  # the chosen head as fitted without fold 0: its energy matches the calibration's


def fold_ids(n_or_labels: NDArray[np.int64], folds: int, seed: int) -> NDArray[np.int64]:
    """Stratified fold assignment: each label's items are shuffled and dealt round-robin."""
    y = np.asarray(n_or_labels)
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), dtype=np.int64)
    for r in np.unique(y):
        idx = np.flatnonzero(y == r)
        rng.shuffle(idx)
        out[idx] = np.arange(len(idx)) % folds
    return out


def fit_temperature(logits: NDArray[np.float64], y: NDArray[np.int64], *, smoothing: float = 0.01) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising held-out NLL of softmax(logits / T).

    The targets are label-smoothed (1 - eps on the true route), so that a head with no held-out mistakes still
    gets a finite temperature instead of probabilities of exactly 0 and 1.
    """
    n_routes = logits.shape[1]
    if n_routes == 1:
        return 1.0
    target = np.full(logits.shape, smoothing / (n_routes - 1))
    target[np.arange(len(y)), y] = 1.0 - smoothing
    best_t, best_nll = 1.0, np.inf
    for t in np.logspace(-3, 1.5, 46):
        nll = -(target * log_softmax(logits / t)).sum(axis=1).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


def cross_fit(
    space: FoldSpace,
    y: NDArray[np.int64],
    fold: NDArray[np.int64],
    out_fold: NDArray[np.int64],
    *,
    candidates: dict[str, Any],
    spec: RouterSpec,
    n_routes: int,
) -> CrossFit:
    """Out-of-fold logits of every candidate head and gate features; the best head by accuracy wins."""
    n_in, n_out = len(y), len(out_fold)
    folds = len(space.xs)
    z = {name: np.zeros((n_in, n_routes)) for name in candidates}
    zo = {name: np.zeros((n_out, n_routes)) for name in candidates}
    in_feats = np.zeros((n_in, len(FEATURES)))
    out_feats = np.zeros((n_out, len(FEATURES))) if n_out else None
    first_heads: dict[str, Any] = {}
    for f in range(folds):
        x, xo = space.xs[f], space.xos[f]
        tr, te = fold != f, fold == f
        ote = out_fold == f
        maha = Mahalanobis.fit(x[tr], y[tr], n_routes)
        for name, kind in candidates.items():
            head = kind.head_cls(spec)
            head.fit(x[tr], y[tr], n_routes)
            if f == 0:
                first_heads[name] = head
            z[name][te] = head.logits(x[te])
            if n_out:
                zo[name][ote] = head.logits(xo[ote])
        in_feats[te, _KNN] = route_similarity_matrix(x[te] @ x[tr].T, y[tr], n_routes, spec.k).max(axis=1)
        in_feats[te, _MAHA] = maha.score(x[te])
        if n_out and out_feats is not None:
            in_feats[te, _OOS] = (x[te] @ xo[~ote].T).max(axis=1) if (~ote).any() else 0.0
            if ote.any():
                xe = xo[ote]
                out_feats[ote, _KNN] = route_similarity_matrix(xe @ x[tr].T, y[tr], n_routes, spec.k).max(1)
                out_feats[ote, _MAHA] = maha.score(xe)
                out_feats[ote, _OOS] = (xe @ xo[~ote].T).max(axis=1) if (~ote).any() else 0.0
    accuracy = {name: float((v.argmax(axis=1) == y).mean()) for name, v in z.items()}
    chosen = max(candidates, key=lambda n: (accuracy[n], -list(candidates).index(n)))
    temperature = fit_temperature(z[chosen], y)
    probs = softmax(z[chosen] / temperature)
    in_feats[:, _PROB] = probs.max(axis=1)
    in_feats[:, _ENERGY] = energy(z[chosen])
    if out_feats is not None:
        out_feats[:, _PROB] = softmax(zo[chosen] / temperature).max(axis=1)
        out_feats[:, _ENERGY] = energy(zo[chosen])
    best, score_auroc = "knn", dict[str, float]()
    if n_routes > 2 and spec.ood_score == "auto" and out_feats is None:
        # on the first fold's split (one head fit per route): what would have caught an unseen route?
        best, score_auroc = select_score(
            space.xs[0],
            y,
            fold != 0,
            fold == 0,
            n_routes=n_routes,
            k=spec.k,
            make_head=lambda: candidates[chosen].head_cls(spec),
        )
    ood_score = best if spec.ood_score == "auto" else spec.ood_score
    return CrossFit(
        accuracy=accuracy,
        chosen=chosen,
        temperature=temperature,
        probs=probs,
        in_feats=in_feats,
        out_feats=out_feats,
        score_auroc=score_auroc,
        ood_score=ood_score,
        gate_head=first_heads[chosen],
    )
