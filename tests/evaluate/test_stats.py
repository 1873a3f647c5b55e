"""Paired statistics against values computed by hand (and scipy/sklearn where they have the same quantity)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cadre.errors import DataError
from cadre.evaluate.stats import mcnemar, paired_bootstrap, paired_comparison, spread


def _pairs(b: int, c: int, both: int = 0, neither: int = 0) -> tuple[list[bool], list[bool]]:
    """Outcome lists with b items only A got right, c only B, ``both`` and ``neither``."""
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return a, bb


def test_mcnemar_exact_matches_hand_computed_binomial() -> None:
    # b=10, c=2: two-sided exact p = 2 * P(X <= 2 | n=12, 1/2) = 2 * (1 + 12 + 66) / 4096
    a, b = _pairs(10, 2, both=50, neither=7)
    res = mcnemar(a, b)
    assert (res.b, res.c, res.n, res.method) == (10, 2, 69, "exact")
    assert res.p_value == pytest.approx(2 * 79 / 4096, rel=1e-12)


def test_mcnemar_chi_square_with_continuity_correction() -> None:
    # b=30, c=15 (45 discordant >= 25): chi2 = (|30-15| - 1)^2 / 45; df=1 tail = erfc(sqrt(chi2 / 2))
    a, b = _pairs(30, 15, both=100, neither=20)
    res = mcnemar(a, b)
    assert res.method == "chi2"
    assert res.statistic == pytest.approx(196 / 45)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(196 / 45 / 2)), rel=1e-9)
    assert res.p_value == pytest.approx(0.03689, abs=5e-5)


def test_mcnemar_symmetric_and_degenerate_cases() -> None:
    assert mcnemar(*_pairs(7, 7)).p_value == pytest.approx(1.0)
    none = mcnemar(*_pairs(0, 0, both=5, neither=5))
    assert (none.b, none.c, none.p_value) == (0, 0, 1.0)
    # swapping A and B swaps b and c but not the p-value
    assert mcnemar(*_pairs(10, 2)[::-1]).p_value == pytest.approx(mcnemar(*_pairs(10, 2)).p_value)
    # forcing the exact test on many discordant pairs agrees with scipy's binomial test
    from scipy.stats import binomtest

    assert mcnemar(*_pairs(30, 15), exact=True).p_value == pytest.approx(binomtest(30, 45, 0.5).pvalue)
    with pytest.raises(DataError, match="same items"):
        mcnemar([True], [True, False])


def test_bootstrap_matches_the_normal_approximation_on_a_known_case() -> None:
    # 1000 items: A alone right on 200, B alone right on 100, 700 ties -> mean difference 0.1, and the
    # per-item difference has variance 0.3 - 0.01 = 0.29, so se = sqrt(0.29 / 1000) = 0.01703
    a, b = _pairs(200, 100, both=400, neither=300)
    res = paired_bootstrap([float(x) for x in a], [float(x) for x in b], resamples=20_000, seed=1)
    se = math.sqrt(0.29 / 1000)
    assert res.difference == pytest.approx(0.1)
    assert res.low == pytest.approx(0.1 - 1.959964 * se, abs=0.004)
    assert res.high == pytest.approx(0.1 + 1.959964 * se, abs=0.004)
    assert (res.n, res.resamples, res.confidence) == (1000, 20_000, 0.95)


def test_bootstrap_degenerate_and_reproducible() -> None:
    same = paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    shift = paired_bootstrap([1.0] * 20, [0.0] * 20)
    assert (shift.low, shift.high) == (1.0, 1.0)
    x = np.random.default_rng(0).random(50)
    y = np.random.default_rng(1).random(50)
    assert paired_bootstrap(x, y, seed=3) == paired_bootstrap(x, y, seed=3)
    with pytest.raises(DataError, match="at least one item"):
        paired_bootstrap([], [])


def test_bootstrap_with_a_corpus_level_statistic_equals_mean_form() -> None:
    a, b = _pairs(30, 10, both=40, neither=20)
    af, bf = np.array(a, float), np.array(b, float)

    def mean_stat(idx: np.ndarray) -> tuple[float, float]:
        return float(af[idx].mean()), float(bf[idx].mean())

    fast = paired_bootstrap(af, bf, resamples=3000, seed=5)
    slow = paired_bootstrap(af, bf, statistic=mean_stat, resamples=3000, seed=5)
    assert slow.difference == pytest.approx(fast.difference)
    assert slow.low == pytest.approx(fast.low, abs=0.02)
    assert slow.high == pytest.approx(fast.high, abs=0.02)


def test_paired_comparison_verdicts() -> None:
    a, b = _pairs(40, 5, both=50, neither=5)
    comp = paired_comparison(a, b, a_name="specialist", b_name="generalist", resamples=5000)
    assert comp.significant and comp.mcnemar is not None and comp.mcnemar.p_value < 1e-5
    assert comp.verdict.startswith("specialist better than generalist by +35.0 points, 95% CI +")
    assert "n = 100" in comp.verdict and "McNemar p = " in comp.verdict
    assert comp.a_value == pytest.approx(0.9) and comp.b_value == pytest.approx(0.55)

    worse = paired_comparison(b, a, a_name="specialist", b_name="generalist", resamples=5000)
    assert worse.verdict.startswith("generalist better than specialist by +35.0 points, 95% CI +")
    assert worse.bootstrap.high < 0  # the interval of specialist - generalist, shown flipped in the verdict

    tie = paired_comparison(*_pairs(3, 3, both=10, neither=4), a_name="x", b_name="y", resamples=2000)
    assert not tie.significant and tie.verdict.startswith("no clear difference between x and y")

    graded = paired_comparison([0.5, 1.0, 0.25], [0.5, 0.5, 0.25], resamples=500)
    assert graded.mcnemar is None  # not binary scores


def test_spread_of_repeated_runs() -> None:
    s = spread([0.7, 0.8, 0.9])
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1) and (s.low, s.high) == (0.7, 0.9)
    assert spread([0.5]).std == 0.0
