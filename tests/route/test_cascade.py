"""Cascade thresholds: each target's guarantee checked on many random calibration/test splits."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import ConfigError, DataError
from cadre.route.cascade import (
    Cascade,
    MeanLogprob,
    SelfAgreement,
    Verifier,
    calibrate_error_rate,
    calibrate_generalist_share,
    calibrate_joint_risk,
    selective_risk,
)
from cadre.runtime.protocol import (
    ChatMessage,
    ChatRequest,
    Completion,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
    Usage,
)

K_SPLITS = 200


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidence ~ U(0, 1); P(error | c) falls from 0.6 to ~0.01: about 22% errors overall."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(size=n)
    p_err = 1.0 / (1.0 + np.exp(-(0.4 - 5.0 * conf)))
    return conf, (rng.uniform(size=n) < p_err).astype(float)


def _splits(n_cal: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    conf, err = _population(40_000, seed)
    rng = np.random.default_rng(seed + 1)
    for _ in range(K_SPLITS):
        idx = rng.permutation(len(conf))
        cal, test = idx[:n_cal], idx[n_cal : n_cal + 5000]
        yield conf[cal], err[cal], conf[test], err[test]


def test_error_rate_among_kept_holds_in_most_splits() -> None:
    """LTT target: error among kept <= 10% with prob >= 90%; counted on K_SPLITS held-out test sets."""
    target, delta = 0.10, 0.10
    held, kept_shares = 0, []
    for c_cal, e_cal, c_test, e_test in _splits(n_cal=500):
        cal = calibrate_error_rate(c_cal, e_cal, max_error_rate=target, delta=delta)
        share, risk = selective_risk(c_test, e_test, cal.threshold)
        held += risk <= target
        kept_shares.append(share)
    # guarantee: >= 90% of splits; the test set's own sampling noise costs a little more
    assert held >= 0.85 * K_SPLITS, f"held in {held}/{K_SPLITS} splits"
    assert np.mean(kept_shares) > 0.4  # and it is not trivially keeping nothing


def test_naive_threshold_would_fail_more_often() -> None:
    """The empirical threshold (calibration error exactly at target) breaks the target in about half the splits."""
    target, fails = 0.10, 0
    for c_cal, e_cal, c_test, e_test in _splits(n_cal=500, seed=3):
        order = np.argsort(-c_cal)
        running = np.cumsum(e_cal[order]) / np.arange(1, len(order) + 1)
        m = int(np.flatnonzero(running <= target).max()) + 1
        _, risk = selective_risk(c_test, e_test, float(c_cal[order][m - 1]))
        fails += risk > target
    assert fails > 0.3 * K_SPLITS


def test_joint_risk_crc_holds_on_average() -> None:
    target, risks = 0.05, []
    for c_cal, e_cal, c_test, e_test in _splits(n_cal=300, seed=5):
        cal = calibrate_joint_risk(c_cal, e_cal, max_risk=target)
        risks.append(float((e_test * (c_test >= cal.threshold)).mean()))
    assert np.mean(risks) <= target  # the CRC guarantee is in expectation
    assert np.mean(risks) > 0.02  # and not vacuous


def test_generalist_share_holds_on_average() -> None:
    target, shares = 0.2, []
    for c_cal, _, c_test, _ in _splits(n_cal=200, seed=7):
        cal = calibrate_generalist_share(c_cal, max_share=target)
        shares.append(float((c_test < cal.threshold).mean()))
    assert np.mean(shares) <= target
    assert np.mean(shares) > 0.17


def test_calibration_edge_cases() -> None:
    cal = calibrate_error_rate([0.9] * 10, [0] * 10, max_error_rate=0.1, delta=0.1)
    assert math.isinf(cal.threshold) and "every request escalates" in cal.guarantee
    assert calibrate_generalist_share([0.1, 0.2, 0.3], max_share=0.1).threshold == -math.inf
    with pytest.raises(ConfigError):
        calibrate_error_rate([0.5], [0], max_error_rate=1.5)
    with pytest.raises(DataError, match="differ in length"):
        calibrate_error_rate([0.5, 0.6], [0], max_error_rate=0.1)
    with pytest.raises(DataError, match="0 or 1"):
        calibrate_error_rate([0.5, 0.6], [0, 0.5], max_error_rate=0.1)
    with pytest.raises(DataError, match="NaN"):
        calibrate_generalist_share([float("nan")], max_share=0.1)


class ScriptedBackend:
    """A Backend double that answers from a table (for the cascade's control flow only)."""

    name = "scripted"

    def __init__(self, answers: dict[str, tuple[str, float]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, SamplingParams, str | None]] = []

    def chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        q = messages[-1]["content"]
        self.calls.append((q, params, adapter))
        text, lp = self.answers[q]
        logprobs = [TokenLogprob(token=text, logprob=lp)] if params.logprobs else None
        return Completion(text=text, usage=Usage(3, 1), logprobs=logprobs)

    def complete(self, prompt: str, params: SamplingParams, *, adapter: str | None = None) -> Completion:
        raise NotImplementedError

    def stream_chat(self, messages, params, *, adapter=None) -> Iterator[StreamChunk]:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def stream_complete(self, prompt, params, *, adapter=None) -> Iterator[StreamChunk]:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def batch_chat(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        return [self.chat(r.messages, r.params, adapter=r.adapter) for r in requests]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def adapters(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def test_cascade_keeps_confident_answers_and_escalates_the_rest(tmp_path: Path) -> None:
    spec = ScriptedBackend({"sure": ("42", -0.05), "unsure": ("7", -2.5)})
    gen = ScriptedBackend({"unsure": ("8", -0.1)})
    cascade = Cascade(signal=MeanLogprob(), threshold=-1.0)
    params = SamplingParams(max_tokens=8)
    kept = cascade.answer(
        [{"role": "user", "content": "sure"}], specialist=spec, generalist=gen, params=params, adapter="math"
    )
    assert (kept.escalated, kept.completion.text, kept.confidence) == (False, "42", -0.05)
    assert spec.calls[0][1].logprobs and spec.calls[0][2] == "math"
    esc = cascade.answer(
        [{"role": "user", "content": "unsure"}], specialist=spec, generalist=gen, params=params
    )
    assert esc.escalated and esc.completion.text == "8" and esc.specialist.text == "7"
    cal = calibrate_generalist_share(np.linspace(-3, 0, 50), max_share=0.2)
    Cascade(signal=MeanLogprob(), threshold=cal.threshold, calibration=cal).save(tmp_path / "c.json")
    back = Cascade.load(tmp_path / "c.json")
    assert back.threshold == cal.threshold and back.calibration == cal and back.signal.name == "mean_logprob"


def test_self_agreement_and_verifier_signals() -> None:
    spec = ScriptedBackend({"q": ("Paris", -0.1)})
    msgs: list[ChatMessage] = [{"role": "user", "content": "q"}]
    first = spec.chat(msgs, SamplingParams())
    assert SelfAgreement(n=3)(msgs, first, backend=spec) == 1.0
    assert all(p.temperature == 0.8 for _, p, _ in spec.calls[1:])
    check = Verifier(lambda m, text: text.startswith("P"), name="starts_with_p")
    assert check(msgs, first) == 1.0
    with pytest.raises(DataError, match="logprobs"):
        MeanLogprob()(msgs, Completion(text="x", usage=Usage()))
