"""Routing metrics: accuracy, per-route precision/recall, confusion, OOD AUROC, coverage-risk, latency, and the
RouteLLM cost-quality metrics (APGR, CPT) against random and always-generalist baselines.

Definitions follow ``shared/notes/routing.md`` section 3.1 (RouteLLM: Ong et al. 2024).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import DataError
from cadre.route.data import Example
from cadre.route.protocol import GENERALIST, RouteDecision, Router

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "RouteEvalReport",
    "auroc",
    "coverage_risk_curve",
    "evaluate_router",
    "fpr_at_tpr",
    "open_intent_metrics",
    "routellm_metrics",
]


def auroc(scores: Any, labels: Any) -> float | None:
    """Area under the ROC curve of ``scores`` for ``labels`` (1 = positive, expected to score higher).

    Mann-Whitney form with mid-ranks for ties: AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg).
    None when one class is absent.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fpr_at_tpr(scores: Any, labels: Any, *, tpr: float = 0.95) -> float | None:
    """FPR at ``tpr`` TPR (FPR95 for 0.95; Liang et al. 2018, "ODIN", and the OOD-detection literature since).

    Positives (label 1, in scope) are expected to score higher: the threshold is the largest one that keeps at
    least ``tpr`` of positives, and FPR is the share of negatives (out of scope) at or above it. None when a
    class is absent.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return None
    pos = np.sort(s[y])
    threshold = pos[int(np.floor((1.0 - tpr) * len(pos)))]
    return float((s[~y] >= threshold).mean())


def open_intent_metrics(
    decisions: Sequence[RouteDecision], examples: Sequence[Example], *, points: int = 20
) -> dict[str, Any]:
    """What open-intent detection papers report (e.g. Zhang et al. 2021, "Deep Open Intent Classification with
    Adaptive Decision Boundary"), from decisions at the router's own threshold:

    - ``domain_accuracy``: in-scope requests whose best-scoring route is right (the gate ignored);
    - ``in_scope_accuracy``: in-scope requests routed to the right specialist (sent away counts as wrong);
    - ``in_scope_kept``: share of in-scope requests that reach a specialist;
    - ``oos_recall`` / ``oos_precision``: out-of-scope requests sent to the generalist / share of requests sent
      to the generalist that were out of scope;
    - ``ood_auroc``, ``fpr95``: threshold-free separation by the in-domain score;
    - ``accuracy_vs_oos_recall``: the trade-off as the in-domain threshold sweeps (``points`` quantiles).
    """
    truth = [ex.route for ex in examples]
    best = [max(d.scores, key=lambda r: d.scores[r]) if d.scores else d.route for d in decisions]
    ins = np.array([t is not None for t in truth])
    sent = np.array([d.route == GENERALIST for d in decisions])
    right = np.array([t is not None and d.route == t for t, d in zip(truth, decisions)])
    best_ok = np.array([t is not None and b == t for t, b in zip(truth, best)])
    n_in, n_oos, n_sent = int(ins.sum()), int((~ins).sum()), int(sent.sum())
    out: dict[str, Any] = {
        "domain_accuracy": float(best_ok[ins].mean()) if n_in else None,
        "in_scope_accuracy": float(right[ins].mean()) if n_in else None,
        "in_scope_kept": float((~sent[ins]).mean()) if n_in else None,
        "oos_recall": float(sent[~ins].mean()) if n_oos else None,
        "oos_precision": float((sent & ~ins).sum() / n_sent) if n_sent else None,
        "ood_auroc": None,
        "fpr95": None,
        "accuracy_vs_oos_recall": [],
    }
    scores = [d.in_domain for d in decisions]
    if n_in and n_oos and all(s is not None for s in scores):
        s = np.asarray(scores, dtype=np.float64)
        out["ood_auroc"] = auroc(s, ins)
        out["fpr95"] = fpr_at_tpr(s, ins)
        curve = []
        for q in np.linspace(0.0, 1.0, points + 1):
            thr = float(np.quantile(s, q))
            keep = s >= thr if q > 0 else np.ones(len(s), dtype=bool)
            curve.append(
                {
                    "threshold": thr,
                    "in_scope_accuracy": float((best_ok & keep)[ins].mean()),
                    "oos_recall": float((~keep)[~ins].mean()),
                }
            )
        out["accuracy_vs_oos_recall"] = curve
    return out


def coverage_risk_curve(confidence: Any, correct: Any, *, points: int = 20) -> list[dict[str, float]]:
    """Keep the most confident share ``c`` of requests, for c = 1/points ... 1: the error rate among them."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    cum_err = np.cumsum(1.0 - ok[order])
    n = len(conf)
    out = []
    for j in range(1, points + 1):
        m = max(1, round(n * j / points))
        out.append(
            {"coverage": m / n, "risk": float(cum_err[m - 1] / m), "threshold": float(conf[order[m - 1]])}
        )
    return out


def _pgr_curve(
    escalate_score: NDArray[np.float64],
    q_weak: NDArray[np.float64],
    q_strong: NDArray[np.float64],
    points: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(share of strong calls, mean quality) when the top share of requests by ``escalate_score`` go strong."""
    n = len(q_weak)
    order = np.argsort(-escalate_score, kind="stable")
    shares, quality = [], []
    for frac in np.linspace(0.0, 1.0, points):
        m = round(frac * n)
        strong = np.zeros(n, dtype=bool)
        strong[order[:m]] = True
        shares.append(m / n)
        quality.append(float(np.where(strong, q_strong, q_weak).mean()))
    return np.asarray(shares), np.asarray(quality)


def _cpt(shares: NDArray[np.float64], pgr: NDArray[np.float64], target: float) -> float | None:
    """Smallest share of strong calls reaching PGR >= target, by linear interpolation (RouteLLM CPT)."""
    for i in range(len(pgr)):
        if pgr[i] >= target:
            if i == 0:
                return float(shares[0])
            x0, x1, y0, y1 = shares[i - 1], shares[i], pgr[i - 1], pgr[i]
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)
    return None


def routellm_metrics(
    escalate_score: Any, q_specialist: Any, q_generalist: Any, *, points: int = 10
) -> dict[str, Any]:
    """APGR, CPT(50%), CPT(80%) of a router that escalates by ``escalate_score``, and the baselines.

    ``PGR(R) = (r(R) - r(weak)) / (r(strong) - r(weak))``; APGR is PGR averaged over the strong-call share 0-100%
    (trapezoid over ``points`` quantile thresholds, RouteLLM's ``--num-results 10``); CPT(x) is the least share of
    strong calls with PGR >= x. Random routing has APGR 0.5 and CPT(x) = x in expectation.
    """
    s = np.asarray(escalate_score, dtype=np.float64)
    qw = np.asarray(q_specialist, dtype=np.float64)
    qs = np.asarray(q_generalist, dtype=np.float64)
    r_weak, r_strong = float(qw.mean()), float(qs.mean())
    shares, quality = _pgr_curve(s, qw, qs, points)
    out: dict[str, Any] = {
        "specialist_quality": r_weak,
        "generalist_quality": r_strong,
        "curve": [{"generalist_share": float(a), "quality": float(b)} for a, b in zip(shares, quality)],
        "baselines": {
            "always_generalist": {"generalist_share": 1.0, "quality": r_strong},
            "always_specialist": {"generalist_share": 0.0, "quality": r_weak},
            "random": {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8},
        },
    }
    gap = r_strong - r_weak
    if gap <= 0:
        out.update(apgr=None, cpt50=None, cpt80=None)
        out["note"] = "the generalist is not better than the specialists on this set: PGR is undefined"
        return out
    pgr = (quality - r_weak) / gap
    auc = float(
        np.sum((shares[1:] - shares[:-1]) * (quality[1:] + quality[:-1]) / 2)
    )  # trapezoid over [0, 1]
    out["apgr"] = (auc - r_weak) / gap
    for x in (0.5, 0.8):
        c = _cpt(shares, pgr, x)
        key = f"cpt{round(x * 100)}"
        out[key] = c
        out[f"cost_saving_vs_random_{key}"] = (x / c) if c else None
    return out


@dataclass
class RouteEvalReport:
    """What ``cadre route eval`` prints (``--json`` dumps it)."""

    n: int
    n_in_scope: int
    n_out_of_scope: int
    accuracy: float  # every request, out-of-scope ones counted right when sent to the generalist
    domain_accuracy: float | None  # in-scope requests: best specialist by score, ignoring the OOD gate
    ood_auroc: float | None  # in-domain score separating in-scope (positive) from out-of-scope requests
    fpr95: float | None  # share of out-of-scope requests kept when the threshold keeps 95% of in-scope ones
    oos_recall: float | None  # of out-of-scope requests, share sent to the generalist
    oos_precision: float | None  # of requests sent to the generalist, share that were out of scope
    in_scope_kept: float | None  # of in-scope requests, share that reached a specialist
    generalist_share: float
    abstention_precision: float | None  # of requests sent to the generalist, share that were out of scope
    abstention_recall: float | None  # of out-of-scope requests, share sent to the generalist
    p50_ms: float
    p99_ms: float
    mean_ms: float
    batch_per_s: float | None
    per_route: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[str, Any] = field(default_factory=dict)
    coverage_risk: list[dict[str, float]] = field(default_factory=list)
    routellm: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # a few misrouted requests, for inspection
    accuracy_vs_oos_recall: list[dict[str, float]] = field(default_factory=list)


def _specialist_quality(ex: Example, route: str) -> float:
    q = ex.quality or {}
    if route in q:
        return q[route]
    return q.get("specialist", 0.0) if route == ex.route else 0.0


def evaluate_router(
    router: Router, examples: Sequence[Example], *, batch_throughput: bool = True, max_errors: int = 10
) -> RouteEvalReport:
    """Route every example one at a time (timed, embedding included) and score the decisions."""
    if not examples:
        raise DataError("evaluation needs at least one example")
    decisions: list[RouteDecision] = []
    times = []
    for ex in examples:
        t0 = time.perf_counter()
        decisions.append(router.route(ex.text))
        times.append((time.perf_counter() - t0) * 1000.0)
    batch_per_s = None
    if batch_throughput:
        t0 = time.perf_counter()
        router.route_batch([ex.text for ex in examples])
        batch_per_s = len(examples) / max(time.perf_counter() - t0, 1e-9)

    truth = [ex.route or GENERALIST for ex in examples]
    pred = [d.route for d in decisions]
    labels = [*router.routes, GENERALIST]
    idx = {r: i for i, r in enumerate(labels)}
    mat = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, pred):
        if t not in idx:
            raise DataError(
                f"evaluation data has route {t!r}, which the router does not know ({router.routes})"
            )
        mat[idx[t], idx.get(p, idx[GENERALIST])] += 1
    per_route = {}
    for r, i in idx.items():
        tp, col, row = mat[i, i], mat[:, i].sum(), mat[i, :].sum()
        per_route[r] = {
            "precision": float(tp / col) if col else 0.0,
            "recall": float(tp / row) if row else 0.0,
            "support": int(row),
        }
    in_scope = [i for i, ex in enumerate(examples) if ex.route is not None]
    oi = open_intent_metrics(decisions, examples)
    sent = [p == GENERALIST for p in pred]
    oos = [ex.route is None for ex in examples]
    n_sent, n_oos = sum(sent), sum(oos)
    both = sum(a and b for a, b in zip(sent, oos))
    cov_conf = [
        d.in_domain if d.in_domain is not None else (d.score if d.route != GENERALIST else -1.0)
        for d in decisions
    ]
    best_route = [max(d.scores, key=lambda r: d.scores[r]) if d.scores else d.route for d in decisions]
    correct = [ex.route is not None and b == ex.route for ex, b in zip(examples, best_route)]
    routellm = None
    if all(ex.quality is not None and "generalist" in ex.quality for ex in examples):
        qs = [_specialist_quality(ex, b) for ex, b in zip(examples, best_route)]
        qg = [(ex.quality or {})["generalist"] for ex in examples]
        routellm = routellm_metrics([-c for c in cov_conf], qs, qg)
        chosen = [g if p == GENERALIST else s for p, s, g in zip(pred, qs, qg)]
        routellm["router_decisions"] = {
            "generalist_share": n_sent / len(examples),
            "quality": float(np.mean(chosen)),
        }
    errors = [
        {"text": ex.text[:200], "truth": t, "routed": p, "score": d.score, "reason": d.reason}
        for ex, t, p, d in zip(examples, truth, pred, decisions)
        if t != p
    ][:max_errors]
    return RouteEvalReport(
        n=len(examples),
        n_in_scope=len(in_scope),
        n_out_of_scope=n_oos,
        accuracy=float(np.mean([t == p for t, p in zip(truth, pred)])),
        domain_accuracy=oi["domain_accuracy"],
        ood_auroc=oi["ood_auroc"],
        fpr95=oi["fpr95"],
        oos_recall=oi["oos_recall"],
        oos_precision=oi["oos_precision"],
        in_scope_kept=oi["in_scope_kept"],
        generalist_share=n_sent / len(examples),
        abstention_precision=both / n_sent if n_sent else None,
        abstention_recall=both / n_oos if n_oos else None,
        p50_ms=float(np.percentile(times, 50)),
        p99_ms=float(np.percentile(times, 99)),
        mean_ms=float(np.mean(times)),
        batch_per_s=batch_per_s,
        per_route=per_route,
        confusion={"labels": labels, "matrix": mat.tolist()},
        coverage_risk=coverage_risk_curve(cov_conf, correct),
        routellm=routellm,
        errors=errors,
        accuracy_vs_oos_recall=oi["accuracy_vs_oos_recall"],
    )
