"""Paired statistics for comparing two systems on the same items.

Two systems answered the same items, so the comparison is paired: the item-to-item variation cancels. That
makes it far more sensitive than comparing two independent accuracies (as a plain z-test on two means would).

- :func:`paired_bootstrap`: a percentile confidence interval of the difference in a metric, resampling items.
- :func:`mcnemar`: McNemar's test on the discordant pairs (exact binomial when they are few, chi-square with
  continuity correction otherwise).
- :func:`paired_comparison`: both, plus a plain-language verdict.
- :func:`spread`: mean and spread of a metric over repeated runs (temperature > 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cadre.errors import DataError

__all__ = [
    "BootstrapResult",
    "Comparison",
    "McNemarResult",
    "Spread",
    "mcnemar",
    "paired_bootstrap",
    "paired_comparison",
    "spread",
]

# Below this many discordant pairs the chi-square approximation is poor; use the exact binomial test
# (the usual rule of thumb, e.g. Fagerland, Lydersen & Laake 2013, BMC Med Res Methodol 13:91).
EXACT_BELOW = 25

Statistic = Callable[[np.ndarray], tuple[float, float]]
"""A corpus-level metric of both systems on the items at the given indices: ``f(idx) -> (a_value, b_value)``."""


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correct/incorrect outcomes."""

    b: int  # A correct, B wrong
    c: int  # A wrong, B correct
    n: int  # items compared
    statistic: float  # chi-square statistic (continuity-corrected); for the exact test, min(b, c)
    p_value: float
    method: str  # "exact" or "chi2"


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap of ``stat(A) - stat(B)`` over resampled items."""

    difference: float  # on the full sample
    low: float
    high: float
    confidence: float
    n: int
    resamples: int


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of system ``a`` against system ``b`` (difference = a - b)."""

    a: str
    b: str
    n: int
    metric: str
    a_value: float
    b_value: float
    bootstrap: BootstrapResult
    mcnemar: McNemarResult | None  # None when the scores are not binary
    verdict: str

    @property
    def difference(self) -> float:
        return self.bootstrap.difference

    @property
    def significant(self) -> bool:
        return self.bootstrap.low > 0 or self.bootstrap.high < 0


@dataclass(frozen=True)
class Spread:
    """A metric over repeated runs."""

    values: tuple[float, ...]
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for one run
    low: float
    high: float


def mcnemar(
    a_correct: Sequence[bool], b_correct: Sequence[bool], *, exact: bool | None = None
) -> McNemarResult:
    """McNemar's test of equal accuracy for two systems scored on the same items.

    Args:
        a_correct: per item, whether system A was right.
        b_correct: the same items, system B.
        exact: force the exact binomial test (True) or chi-square (False); None chooses exact when the
            discordant count b + c is below 25.

    Returns:
        The discordant counts, the statistic and the two-sided p-value.
    """
    if len(a_correct) != len(b_correct):
        raise DataError(f"paired test needs the same items: {len(a_correct)} vs {len(b_correct)} outcomes")
    a = np.asarray(a_correct, dtype=bool)
    bb = np.asarray(b_correct, dtype=bool)
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    n_disc = b + c
    use_exact = (n_disc < EXACT_BELOW) if exact is None else exact
    if n_disc == 0:
        return McNemarResult(b=b, c=c, n=len(a), statistic=0.0, p_value=1.0, method="exact")
    if use_exact:
        from scipy.stats import binomtest

        # Under H0 each discordant pair is A-better with probability 1/2 (McNemar 1947; exact form).
        p = float(binomtest(b, n_disc, 0.5, alternative="two-sided").pvalue)
        return McNemarResult(
            b=b, c=c, n=len(a), statistic=float(min(b, c)), p_value=min(1.0, p), method="exact"
        )
    from scipy.stats import chi2

    # Edwards' continuity correction: (|b - c| - 1)^2 / (b + c), chi-square with 1 degree of freedom.
    stat = (abs(b - c) - 1) ** 2 / n_disc
    return McNemarResult(
        b=b, c=c, n=len(a), statistic=stat, p_value=float(chi2.sf(stat, df=1)), method="chi2"
    )


def paired_bootstrap(
    a_scores: Sequence[float],
    b_scores: Sequence[float],
    *,
    statistic: Statistic | None = None,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap CI of ``stat(A) - stat(B)``, resampling items (the same indices for both).

    Args:
        a_scores: per-item scores of system A (e.g. 1/0 correctness).
        b_scores: the same items, system B.
        statistic: for corpus-level metrics (macro-F1), ``f(indices) -> (a_value, b_value)`` computed on the
            resampled items; None uses the mean of the per-item scores (fast, vectorised).
        resamples: bootstrap replicates.
        confidence: two-sided coverage, e.g. 0.95.
        seed: random seed (results are reproducible).

    Returns:
        The full-sample difference and the percentile interval (Efron & Tibshirani 1993, ch. 13).
    """
    if len(a_scores) != len(b_scores):
        raise DataError(f"paired bootstrap needs the same items: {len(a_scores)} vs {len(b_scores)} scores")
    n = len(a_scores)
    if n == 0:
        raise DataError("paired bootstrap needs at least one item; the run has no scored items in common")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    a = np.asarray(a_scores, dtype=float)
    b = np.asarray(b_scores, dtype=float)
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    if statistic is None:
        d = a - b
        full = float(d.mean())
        reps = np.empty(resamples)
        chunk = max(1, 2_000_000 // n)  # bound memory: chunk x n indices at a time
        for start in range(0, resamples, chunk):
            m = min(chunk, resamples - start)
            idx = rng.integers(0, n, size=(m, n))
            reps[start : start + m] = d[idx].mean(axis=1)
    else:
        fa, fb = statistic(np.arange(n))
        full = float(fa - fb)
        reps = np.empty(resamples)
        for i in range(resamples):
            ra, rb = statistic(rng.integers(0, n, size=n))
            reps[i] = ra - rb
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return BootstrapResult(
        difference=full, low=float(low), high=float(high), confidence=confidence, n=n, resamples=resamples
    )


def _fmt_points(x: float) -> str:
    return f"{x * 100:+.1f}"


def verdict(a: str, b: str, boot: BootstrapResult, test: McNemarResult | None, *, metric: str) -> str:
    """A one-line plain-language reading of a paired comparison (differences shown in points).

    The interval is written for the winner's advantage, so it reads "specialist better by +11.2 points,
    95% CI +8.1 to +14.3 points" whichever of the two systems won.
    """
    pct = round(boot.confidence * 100)
    p = f", McNemar p = {test.p_value:.3g}" if test is not None else ""
    tail = f" ({metric}, n = {boot.n}{p})"
    if boot.low > 0:
        ci = f"{pct}% CI {_fmt_points(boot.low)} to {_fmt_points(boot.high)} points"
        return f"{a} better than {b} by {_fmt_points(boot.difference)} points, {ci}{tail}"
    if boot.high < 0:
        ci = f"{pct}% CI {_fmt_points(-boot.high)} to {_fmt_points(-boot.low)} points"
        return f"{b} better than {a} by {_fmt_points(-boot.difference)} points, {ci}{tail}"
    ci = f"{pct}% CI {_fmt_points(boot.low)} to {_fmt_points(boot.high)} points"
    return f"no clear difference between {a} and {b}: {a} {_fmt_points(boot.difference)} points, {ci}{tail}"


def paired_comparison(
    a_scores: Sequence[float],
    b_scores: Sequence[float],
    *,
    a_name: str = "A",
    b_name: str = "B",
    metric: str = "accuracy",
    statistic: Statistic | None = None,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare A with B on the same items: bootstrap CI of the difference, McNemar, and a verdict.

    Scores are per item, aligned (same item at the same index). McNemar runs when every score is 0 or 1.
    """
    a = np.asarray(a_scores, dtype=float)
    b = np.asarray(b_scores, dtype=float)
    boot = paired_bootstrap(
        list(a), list(b), statistic=statistic, resamples=resamples, confidence=confidence, seed=seed
    )
    binary = bool(np.all((a == 0) | (a == 1)) and np.all((b == 0) | (b == 1)))
    test = mcnemar(a == 1, b == 1) if binary else None
    if statistic is None:
        a_val, b_val = float(a.mean()), float(b.mean())
    else:
        fa, fb = statistic(np.arange(len(a)))
        a_val, b_val = float(fa), float(fb)
    return Comparison(
        a=a_name,
        b=b_name,
        n=len(a),
        metric=metric,
        a_value=a_val,
        b_value=b_val,
        bootstrap=boot,
        mcnemar=test,
        verdict=verdict(a_name, b_name, boot, test, metric=metric),
    )


def spread(values: Sequence[float]) -> Spread:
    """Mean, sample standard deviation and range of a metric over repeated runs."""
    if not values:
        raise DataError("no runs to summarise")
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return Spread(
        values=tuple(float(x) for x in v),
        mean=float(v.mean()),
        std=std if math.isfinite(std) else 0.0,
        low=float(v.min()),
        high=float(v.max()),
    )
