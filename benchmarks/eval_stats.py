"""Paired bootstrap of an accuracy difference: cadre.evaluate.stats vs scipy.stats.bootstrap (paired, percentile).

Prints the time per call (median of 5) and the two intervals for the same data. Run:
    .venv/bin/python benchmarks/eval_stats.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from scipy.stats import bootstrap

from cadre.evaluate.stats import mcnemar, paired_bootstrap


def _time(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    print("paired bootstrap, 10,000 resamples, percentile 95% CI (median of 5 runs; shared 2-core VM)")
    print(f"{'items':>6} {'cadre s':>9} {'scipy s':>9} {'speed-up':>9}   cadre CI            scipy CI")
    for n in (200, 1000, 5000):
        a = (rng.random(n) < 0.82).astype(float)  # a specialist right 82% of the time
        b = np.where(rng.random(n) < 0.7, a, (rng.random(n) < 0.7).astype(float))  # correlated generalist

        def ours(a: np.ndarray = a, b: np.ndarray = b) -> tuple[float, float]:
            r = paired_bootstrap(a, b, resamples=10_000, seed=1)
            return r.low, r.high

        def theirs(a: np.ndarray = a, b: np.ndarray = b) -> tuple[float, float]:
            r = bootstrap(
                (a, b),
                lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
                paired=True,
                vectorized=True,
                n_resamples=10_000,
                method="percentile",
                random_state=1,
            )
            return float(r.confidence_interval.low), float(r.confidence_interval.high)

        t_ours, t_theirs = _time(ours), _time(theirs)
        lo, hi = ours()
        slo, shi = theirs()
        print(
            f"{n:>6} {t_ours:>9.4f} {t_theirs:>9.4f} {t_theirs / t_ours:>8.1f}x   "
            f"[{lo * 100:+.2f}, {hi * 100:+.2f}]   [{slo * 100:+.2f}, {shi * 100:+.2f}]"
        )
    a = (rng.random(1000) < 0.8).tolist()
    b = (rng.random(1000) < 0.75).tolist()
    t = _time(lambda: mcnemar(a, b))
    print(f"McNemar on 1,000 paired outcomes: {t * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
