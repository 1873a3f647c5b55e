"""The cascade: a specialist answers, a confidence signal decides whether to keep its answer or escalate to the
generalist, and the threshold comes from a stated target with a finite-sample guarantee.

Targets (each a function returning a ``Calibration``):

- ``calibrate_error_rate``: at most X% errors among the requests the specialists keep, with probability
  >= 1 - delta over the calibration set (Learn-then-Test, Angelopoulos et al. 2021, with binomial p-values and
  fixed-sequence testing from the most confident requests down).
- ``calibrate_joint_risk``: the share of *all* requests that are kept and wrong at most X% in expectation
  (conformal risk control, Angelopoulos et al. 2022, loss ``error * kept``, which is monotone in the threshold).
- ``calibrate_generalist_share``: at most Y% of requests escalated, in expectation (split-conformal quantile).

Signals: ``MeanLogprob`` (mean token log-probability of the answer), ``SelfAgreement`` (share of sampled answers
that agree with the greedy one), ``Verifier`` (any function of the request and the answer, e.g. a JSON-schema or
unit-test check).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cadre.errors import ConfigError, DataError, NotFoundError
from cadre.runtime.protocol import Backend, ChatMessage, Completion, SamplingParams

__all__ = [
    "Calibration",
    "Cascade",
    "CascadeResult",
    "ConfidenceSignal",
    "MeanLogprob",
    "SelfAgreement",
    "Verifier",
    "calibrate_error_rate",
    "calibrate_generalist_share",
    "calibrate_joint_risk",
    "selective_risk",
]


# ---- confidence signals ------------------------------------------------------------------------------
@runtime_checkable
class ConfidenceSignal(Protocol):
    """Higher = more confident that the specialist's answer is right."""

    name: str
    needs_logprobs: bool

    def __call__(
        self,
        messages: Sequence[ChatMessage],
        completion: Completion,
        *,
        backend: Backend | None = None,
        adapter: str | None = None,
    ) -> float: ...


class MeanLogprob:
    """The mean log-probability of the answer's tokens (the specialist must return logprobs)."""

    name = "mean_logprob"
    needs_logprobs = True

    def __call__(
        self,
        messages: Sequence[ChatMessage],
        completion: Completion,
        *,
        backend: Backend | None = None,
        adapter: str | None = None,
    ) -> float:
        value = completion.mean_logprob
        if value is None:
            raise DataError(
                "the specialist returned no logprobs; request them with SamplingParams(logprobs=True)"
            )
        return float(value)


_SPACE = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", text.strip()).casefold()


class SelfAgreement:
    """Share of ``n`` sampled answers (temperature ``temperature``) equal to the greedy answer after ``key``.

    ``key`` maps an answer to what must agree (default: whitespace- and case-normalised text; pass e.g. a
    function extracting the final number or a JSON field).
    """

    name = "self_agreement"
    needs_logprobs = False

    def __init__(
        self,
        *,
        n: int = 4,
        temperature: float = 0.8,
        max_tokens: int = 128,
        key: Callable[[str], str] | None = None,
    ) -> None:
        if n < 1:
            raise ConfigError(f"self-agreement needs n >= 1 samples, got {n}")
        self.n = n
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.key = key or _normalise

    def __call__(
        self,
        messages: Sequence[ChatMessage],
        completion: Completion,
        *,
        backend: Backend | None = None,
        adapter: str | None = None,
    ) -> float:
        if backend is None:
            raise ConfigError("self-agreement samples more answers: pass the specialist backend")
        ref = self.key(completion.text)
        agree = 0
        for i in range(self.n):
            params = SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, seed=1000 + i)
            agree += self.key(backend.chat(messages, params, adapter=adapter).text) == ref
        return agree / self.n


class Verifier:
    """Wraps ``fn(messages, answer_text) -> bool | float`` (True / 1.0 = the answer passes)."""

    name = "verifier"
    needs_logprobs = False

    def __init__(
        self, fn: Callable[[Sequence[ChatMessage], str], bool | float], *, name: str = "verifier"
    ) -> None:
        self.fn = fn
        self.name = name

    def __call__(
        self,
        messages: Sequence[ChatMessage],
        completion: Completion,
        *,
        backend: Backend | None = None,
        adapter: str | None = None,
    ) -> float:
        return float(self.fn(messages, completion.text))


# ---- threshold calibration ---------------------------------------------------------------------------
@dataclass
class Calibration:
    """A threshold (keep the specialist's answer when confidence >= threshold) and what it guarantees."""

    threshold: float
    target: str  # "error_rate" | "joint_risk" | "generalist_share"
    level: float  # the X or Y of the target
    method: str
    n: int  # calibration requests
    delta: float | None = None
    kept_share: float = 0.0  # on the calibration set
    error_among_kept: float | None = None  # on the calibration set
    guarantee: str = ""

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if math.isinf(self.threshold):
            d["threshold"] = "inf" if self.threshold > 0 else "-inf"
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        d = dict(d)
        if isinstance(d["threshold"], str):
            d["threshold"] = float(d["threshold"])
        return cls(**d)


def _arrays(confidence: Sequence[float], errors: Sequence[float] | None = None) -> tuple[Any, Any]:
    c = np.asarray(confidence, dtype=np.float64)
    if c.ndim != 1 or len(c) == 0:
        raise DataError("calibration needs a non-empty 1-D list of confidences")
    if np.isnan(c).any():
        raise DataError("calibration confidences contain NaN; drop those requests or fix the signal")
    if errors is None:
        return c, None
    e = np.asarray(errors, dtype=np.float64)
    if e.shape != c.shape:
        raise DataError(
            f"confidences ({len(c)}) and errors ({len(e)}) differ in length; pair them per request"
        )
    return c, e


def selective_risk(
    confidence: Sequence[float], errors: Sequence[float], threshold: float
) -> tuple[float, float]:
    """(share kept, error rate among kept) at ``threshold``; the error rate is 0 when nothing is kept."""
    c, e = _arrays(confidence, errors)
    kept = c >= threshold
    share = float(kept.mean())
    return share, float(e[kept].mean()) if kept.any() else 0.0


def calibrate_error_rate(
    confidence: Sequence[float],
    errors: Sequence[float],
    *,
    max_error_rate: float,
    delta: float = 0.1,
    min_kept: int | None = None,
) -> Calibration:
    """Threshold with error rate among kept requests <= ``max_error_rate``, with probability >= 1 - delta.

    Learn-then-Test (Angelopoulos et al. 2021): for kept counts m = m0, m0 + step, ... (the m most confident
    calibration requests), test H0 "error rate among kept > X" with the exact binomial p-value
    ``P(Binomial(m, X) <= errors among them)``; walk in that fixed order while H0 is rejected at level delta and
    keep the last rejected threshold (fixed-sequence testing controls the family-wise error at delta).
    ``m0`` defaults to the larger of the fewest requests that can reject at all and 10% of the set.

    Args:
        confidence: the signal per calibration request (higher = keep).
        errors: 1 where the specialist's answer was wrong, else 0.
        max_error_rate: X, the target error rate among kept requests.
        delta: allowed probability that the calibration set misleads.
    """
    c, e = _arrays(confidence, errors)
    if not 0 < max_error_rate < 1:
        raise ConfigError(f"max_error_rate must be in (0, 1), got {max_error_rate}")
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta}")
    if not np.isin(e, (0.0, 1.0)).all():
        raise DataError("errors must be 0 or 1 per request (1 = the specialist's answer was wrong)")
    from scipy.stats import binom

    n = len(c)
    order = np.argsort(-c, kind="stable")
    cs, es = c[order], e[order]
    cum_err = np.cumsum(es)
    fewest = math.ceil(math.log(delta) / math.log(1 - max_error_rate))  # 0 errors in m rejects iff m >= this
    m0 = min_kept if min_kept is not None else max(fewest, math.ceil(0.1 * n))
    step = max(1, n // 200)
    threshold, chosen_m = math.inf, 0
    for m in range(max(1, m0), n + 1, step):
        # all requests tied with the m-th confidence are kept together
        thr = cs[m - 1]
        mm = int(np.searchsorted(-cs, -thr, side="right"))
        pval = float(binom.cdf(cum_err[mm - 1], mm, max_error_rate))
        if pval > delta:
            break
        threshold, chosen_m = float(thr), mm
    if chosen_m == 0:
        guarantee = (
            f"no threshold passes with {n} calibration requests (the most confident {max(1, m0)} already err too "
            f"often or too few to tell): every request escalates; add calibration data or relax the target"
        )
        return Calibration(
            threshold=math.inf,
            target="error_rate",
            level=max_error_rate,
            method="learn-then-test",
            n=n,
            delta=delta,
            kept_share=0.0,
            error_among_kept=None,
            guarantee=guarantee,
        )
    share, err = selective_risk(c, e, threshold)
    return Calibration(
        threshold=threshold,
        target="error_rate",
        level=max_error_rate,
        method="learn-then-test",
        n=n,
        delta=delta,
        kept_share=share,
        error_among_kept=err,
        guarantee=(
            f"error rate among kept requests <= {max_error_rate:g} with probability >= {1 - delta:g} "
            f"(calibration: {n} requests, {share:.1%} kept, {err:.1%} errors among them)"
        ),
    )


def calibrate_joint_risk(
    confidence: Sequence[float], errors: Sequence[float], *, max_risk: float
) -> Calibration:
    """Threshold with E[kept and wrong] <= ``max_risk`` over all requests (conformal risk control).

    CRC (Angelopoulos et al. 2022, Thm. 1): for a loss L_i(t) = error_i * [conf_i >= t] in [0, 1],
    non-increasing in t, the smallest t with ``(n * mean L(t) + 1) / (n + 1) <= max_risk`` gives
    ``E[L_{n+1}(t)] <= max_risk``. Errors may be fractional (a loss in [0, 1]).
    """
    c, e = _arrays(confidence, errors)
    if not 0 < max_risk < 1:
        raise ConfigError(f"max_risk must be in (0, 1), got {max_risk}")
    if (e < 0).any() or (e > 1).any():
        raise DataError("errors must lie in [0, 1] per request")
    n = len(c)
    order = np.argsort(c, kind="stable")  # ascending: raising t past cs[j] drops requests 0..j
    cs, es = c[order], e[order]
    # loss at t = cs[j] keeps requests j.. (ties: the first of a tie run keeps all of it)
    tail = np.concatenate([np.cumsum(es[::-1])[::-1], [0.0]])  # tail[j] = sum of losses of requests j..n-1
    threshold = math.inf
    for j in range(n + 1):
        if j < n and j > 0 and cs[j] == cs[j - 1]:
            continue
        if (tail[j] + 1.0) / (n + 1.0) <= max_risk:
            threshold = float(cs[j]) if j < n else math.inf
            break
    share, err = selective_risk(c, e, threshold)
    return Calibration(
        threshold=threshold,
        target="joint_risk",
        level=max_risk,
        method="conformal-risk-control",
        n=n,
        kept_share=share,
        error_among_kept=err if share else None,
        guarantee=f"expected share of all requests kept and wrong <= {max_risk:g} (calibration: {n} requests)",
    )


def calibrate_generalist_share(confidence: Sequence[float], *, max_share: float) -> Calibration:
    """Threshold escalating at most ``max_share`` of requests in expectation (split-conformal quantile).

    With t the k-th smallest of n calibration confidences, k = floor((n + 1) * Y), a new exchangeable request
    falls strictly below t with probability at most k / (n + 1) <= Y.
    """
    c, _ = _arrays(confidence)
    if not 0 <= max_share < 1:
        raise ConfigError(f"max_share must be in [0, 1), got {max_share}")
    n = len(c)
    k = math.floor((n + 1) * max_share)
    threshold = -math.inf if k == 0 else float(np.sort(c)[min(k, n) - 1])
    share = float((c >= threshold).mean())
    return Calibration(
        threshold=threshold,
        target="generalist_share",
        level=max_share,
        method="split-conformal-quantile",
        n=n,
        kept_share=share,
        guarantee=f"expected share of requests escalated to the generalist <= {max_share:g} ({n} requests)",
    )


# ---- the cascade -------------------------------------------------------------------------------------
@dataclass
class CascadeResult:
    completion: Completion  # the answer returned to the client
    escalated: bool
    confidence: float
    specialist: Completion  # the specialist's answer (kept or not)
    generalist: Completion | None = None


SIGNALS: dict[str, Callable[[], ConfidenceSignal]] = {
    "mean_logprob": MeanLogprob,
    "self_agreement": SelfAgreement,
}


@dataclass
class Cascade:
    """Keep the specialist's answer when ``signal >= threshold``, else ask the generalist."""

    signal: ConfidenceSignal
    threshold: float
    calibration: Calibration | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def keeps(self, confidence: float) -> bool:
        return confidence >= self.threshold

    def answer(
        self,
        messages: Sequence[ChatMessage],
        *,
        specialist: Backend,
        generalist: Backend | None,
        params: SamplingParams,
        adapter: str | None = None,
        generalist_params: SamplingParams | None = None,
    ) -> CascadeResult:
        """Run the specialist, score its answer, and escalate to ``generalist`` when below the threshold.

        With ``generalist=None`` an escalation returns the specialist's answer with ``escalated=True`` (the
        caller forwards the request itself, e.g. the server to a remote endpoint).
        """
        p = dataclasses.replace(params, logprobs=True) if self.signal.needs_logprobs else params
        spec_out = specialist.chat(messages, p, adapter=adapter)
        conf = self.signal(messages, spec_out, backend=specialist, adapter=adapter)
        if self.keeps(conf):
            return CascadeResult(completion=spec_out, escalated=False, confidence=conf, specialist=spec_out)
        if generalist is None:
            return CascadeResult(completion=spec_out, escalated=True, confidence=conf, specialist=spec_out)
        gen_out = generalist.chat(messages, generalist_params or params)
        return CascadeResult(
            completion=gen_out, escalated=True, confidence=conf, specialist=spec_out, generalist=gen_out
        )

    def save(self, path: str | Path) -> None:
        """Write the threshold, the signal name and the calibration as JSON."""
        data = {
            "signal": self.signal.name,
            "threshold": self.threshold if math.isfinite(self.threshold) else str(self.threshold),
            "calibration": self.calibration.to_json() if self.calibration else None,
            "extra": self.extra,
        }
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, signal: ConfidenceSignal | None = None) -> Cascade:
        """Read a cascade saved by ``save``; pass ``signal`` for a verifier or a customised signal."""
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"cascade file {str(p)!r} does not exist")
        data = json.loads(p.read_text(encoding="utf-8"))
        if signal is None:
            make = SIGNALS.get(data["signal"])
            if make is None:
                raise ConfigError(f"cascade {p} uses signal {data['signal']!r}: pass it as signal=...")
            signal = make()
        cal = Calibration.from_json(data["calibration"]) if data.get("calibration") else None
        return cls(
            signal=signal, threshold=float(data["threshold"]), calibration=cal, extra=data.get("extra", {})
        )
