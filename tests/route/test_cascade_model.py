"""The cascade on a real model: SmolLM2-135M (llama.cpp) as the specialist, its mean token logprob as signal."""

from __future__ import annotations

import pytest

from cadre.route.cascade import Cascade, MeanLogprob, SelfAgreement, calibrate_generalist_share
from cadre.runtime.protocol import ChatMessage, SamplingParams

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is 2 + 2? Answer with the number only.",
    "What is the capital of France? One word.",
    "Spell the word cat backwards.",
    "What is 17 * 23? Answer with the number only.",
    "Name the largest planet in the solar system.",
    "What is the square root of 1521? Answer with the number only.",
    "Which year did the Berlin Wall fall?",
    "Translate 'thank you' into Japanese.",
]


def test_cascade_with_real_model_escalates_below_calibrated_threshold() -> None:
    from cadre.runtime import load_backend

    backend = load_backend("smollm2-135m", n_ctx=512, n_threads=2)
    try:
        params = SamplingParams(max_tokens=12, temperature=0.0, seed=0)
        signal = MeanLogprob()
        chats: list[list[ChatMessage]] = [[{"role": "user", "content": q}] for q in QUESTIONS]
        confs = []
        for msgs in chats:
            out = backend.chat(msgs, SamplingParams(max_tokens=12, temperature=0.0, seed=0, logprobs=True))
            confs.append(signal(msgs, out))
        assert all(c <= 0 for c in confs) and len(set(confs)) > 1
        cal = calibrate_generalist_share(confs, max_share=0.5)
        cascade = Cascade(signal=signal, threshold=cal.threshold, calibration=cal)
        results = [cascade.answer(m, specialist=backend, generalist=backend, params=params) for m in chats]
        for res, conf in zip(results, confs):
            assert res.confidence == pytest.approx(conf, abs=1e-4)  # greedy decoding is repeatable
            assert res.escalated == (conf < cal.threshold)
            assert (res.generalist is not None) == res.escalated
        assert 0 < sum(r.escalated for r in results) <= len(results) // 2 + 1
        agree = SelfAgreement(n=2, max_tokens=8)(chats[0], results[0].specialist, backend=backend)
        assert 0.0 <= agree <= 1.0
    finally:
        backend.close()
