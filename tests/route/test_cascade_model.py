"""The cascade on a real model: SmolLM2-135M (llama.cpp) as the specialist, its mean token logprob as signal."""

from __future__ import annotations

import math

import pytest

from cadre.route.cascade import Cascade, MeanLogprob, SelfAgreement, calibrate_generalist_share
from cadre.runtime.protocol import ChatMessage, SamplingParams

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is 2 + 2? Answer with the number only.",
    "What is the capital of France? One word.",
    "What is 17 * 23? Answer with the number only.",
    "Name the largest planet in the solar system.",
    "What is the square root of 1521? Answer with the number only.",
    "Translate 'thank you' into Japanese.",
]


def test_cascade_with_real_model_escalates_below_calibrated_threshold() -> None:
    from cadre.runtime import load_backend

    backend = load_backend("smollm2-135m", n_ctx=256, n_threads=1)
    try:
        params = SamplingParams(max_tokens=8, temperature=0.0, seed=0)
        chats: list[list[ChatMessage]] = [[{"role": "user", "content": q}] for q in QUESTIONS]
        # calibration pass: a cascade that never escalates just reports the specialist's confidence
        probe = Cascade(signal=MeanLogprob(), threshold=-math.inf)
        first = [probe.answer(m, specialist=backend, generalist=None, params=params) for m in chats]
        confs = [r.confidence for r in first]
        assert not any(r.escalated for r in first)
        assert all(c <= 0 for c in confs) and len(set(confs)) > 1
        cal = calibrate_generalist_share(confs, max_share=0.5)
        cascade = Cascade(signal=MeanLogprob(), threshold=cal.threshold, calibration=cal)
        low, high = confs.index(min(confs)), confs.index(max(confs))
        esc = cascade.answer(chats[low], specialist=backend, generalist=backend, params=params)
        assert esc.escalated and esc.generalist is not None and esc.completion is esc.generalist
        assert esc.confidence == pytest.approx(confs[low], abs=1e-4)  # greedy decoding is repeatable
        kept = cascade.answer(chats[high], specialist=backend, generalist=backend, params=params)
        assert not kept.escalated and kept.completion.text == first[high].completion.text
        agree = SelfAgreement(n=1, max_tokens=8)(chats[high], kept.specialist, backend=backend)
        assert agree in (0.0, 1.0)
    finally:
        backend.close()
