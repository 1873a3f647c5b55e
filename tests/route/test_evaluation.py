"""Routing metrics against independent computations and known values."""

from __future__ import annotations

import numpy as np
import pytest

from cadre.route.evaluation import auroc, coverage_risk_curve, routellm_metrics


def test_auroc_matches_scikit_learn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding creates ties
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert auroc([1, 2], [1, 1]) is None


def test_coverage_risk_curve() -> None:
    conf = [0.9, 0.8, 0.7, 0.6]
    correct = [1, 1, 0, 0]
    curve = coverage_risk_curve(conf, correct, points=4)
    assert [p["risk"] for p in curve] == [0.0, 0.0, pytest.approx(1 / 3), 0.5]
    assert [p["coverage"] for p in curve] == [0.25, 0.5, 0.75, 1.0]


def test_routellm_random_router_scores_about_half() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    weak = rng.uniform(size=n) < 0.5
    strong = weak | (rng.uniform(size=n) < 0.6)
    random_scores = rng.uniform(size=n)
    m = routellm_metrics(random_scores, weak, strong)
    assert m["apgr"] == pytest.approx(0.5, abs=0.03)
    assert m["cpt50"] == pytest.approx(0.5, abs=0.06)


def test_routellm_oracle_router_and_cpt_interpolation() -> None:
    # 10 items: the specialist fails on 2; a router escalating exactly those recovers the whole gap at 20%.
    weak = np.array([1] * 8 + [0] * 2, dtype=float)
    strong = np.ones(10)
    oracle = 1.0 - weak  # escalate the failures first
    m = routellm_metrics(oracle, weak, strong, points=11)
    assert m["cpt80"] == pytest.approx(0.16)  # PGR reaches 0.5 at 10%, 1.0 at 20%: 0.8 at 16%
    assert m["cpt50"] == pytest.approx(0.10)
    assert m["apgr"] > 0.85
    assert m["cost_saving_vs_random_cpt50"] == pytest.approx(5.0)
    assert m["baselines"]["always_generalist"] == {"generalist_share": 1.0, "quality": 1.0}


def test_routellm_no_gap_is_reported_not_divided() -> None:
    m = routellm_metrics([0.1, 0.2], [1, 1], [1, 1])
    assert m["apgr"] is None and "not better" in m["note"]
