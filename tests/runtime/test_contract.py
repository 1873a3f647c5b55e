"""One contract, three backends: llama.cpp (bundled SmolLM2), transformers (a tiny random llama) and the
OpenAI-compatible HTTP backend against a real llama-cpp-python server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cadre.errors import ContextLengthError, NotFoundError
from cadre.runtime import Backend, ChatRequest, SamplingParams, load_backend
from cadre.runtime.protocol import collect_stream

MSG = [{"role": "user", "content": "Name three colors."}]
LONG = "hello world, how are you today? " * 400  # ~3,600 tokens: over every context used here


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("llamacpp", marks=pytest.mark.slow),
        "transformers",
        pytest.param("http", marks=pytest.mark.slow),
    ],
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind = request.param
    if kind == "llamacpp":
        b = load_backend("smollm2-135m", n_ctx=512, n_parallel=4, n_threads=1)
    elif kind == "transformers":
        b = load_backend(str(request.getfixturevalue("tiny_llama_dir")), n_ctx=256)
    else:
        url = request.getfixturevalue("llama_server")
        b = load_backend(f"openai:smollm2-135m@{url}", max_retries=0)
    yield b
    b.close()


def test_is_a_backend(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name


def test_chat_returns_text_usage_and_timings(backend: Backend) -> None:
    c = backend.chat(MSG, SamplingParams(max_tokens=8))
    assert c.usage.prompt_tokens > 0
    assert 0 < c.usage.completion_tokens <= 8
    assert c.text
    assert c.finish_reason in ("stop", "length")
    assert 0 <= c.seconds_to_first_token <= c.seconds_total


def test_max_tokens_is_respected(backend: Backend) -> None:
    c = backend.complete("one two three four", SamplingParams(max_tokens=4))
    assert c.usage.completion_tokens <= 4
    if c.finish_reason == "length":
        assert c.usage.completion_tokens == 4


def test_greedy_is_deterministic(backend: Backend) -> None:
    p = SamplingParams(max_tokens=10, temperature=0.0)
    assert backend.chat(MSG, p).text == backend.chat(MSG, p).text


def test_seed_makes_sampling_repeatable(backend: Backend) -> None:
    p = SamplingParams(max_tokens=10, temperature=1.0, seed=1234)
    assert backend.chat(MSG, p).text == backend.chat(MSG, p).text


def test_stream_matches_non_stream(backend: Backend) -> None:
    p = SamplingParams(max_tokens=10)
    chunks = list(backend.stream_chat(MSG, p))
    assert chunks[-1].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert "".join(c.text for c in chunks) == backend.chat(MSG, p).text


def test_stop_sequence_cuts_the_text(backend: Backend) -> None:
    p = SamplingParams(max_tokens=16)
    full = backend.complete("the quick brown fox", p).text
    assert len(full) >= 4, full
    stop = full[2:4]
    cut = backend.complete("the quick brown fox", SamplingParams(max_tokens=16, stop=(stop,)))
    assert cut.text == full[: full.find(stop)]
    assert cut.finish_reason == "stop"


def test_logprobs_per_token(backend: Backend) -> None:
    c = backend.complete("hello world", SamplingParams(max_tokens=6, logprobs=True))
    assert c.logprobs is not None
    assert len(c.logprobs) == c.usage.completion_tokens
    assert all(t.logprob <= 1e-4 for t in c.logprobs)
    assert c.mean_logprob is not None


def test_top_logprobs_rank_the_alternatives(backend: Backend) -> None:
    c = backend.complete("hello world", SamplingParams(max_tokens=4, logprobs=True, top_logprobs=3))
    assert c.logprobs
    for t in c.logprobs:
        assert 1 <= len(t.top) <= 3
        values = [a.logprob for a in t.top]
        assert values == sorted(values, reverse=True)
        assert t.top[0].logprob == pytest.approx(t.logprob, abs=1e-3)  # greedy: the chosen token is the best


def test_count_tokens(backend: Backend) -> None:
    assert 0 < backend.count_tokens("hello world") < backend.count_tokens("hello world " * 10)


def test_batch_matches_single_requests(backend: Backend) -> None:
    prompts = ["Name three colors.", "Say hello.", "Count to three."]
    p = SamplingParams(max_tokens=6, logprobs=True, top_logprobs=3)
    single = [backend.chat([{"role": "user", "content": q}], p) for q in prompts]
    batch = backend.batch_chat(
        [ChatRequest(messages=[{"role": "user", "content": q}], params=p) for q in prompts]
    )
    assert [c.usage.prompt_tokens for c in batch] == [c.usage.prompt_tokens for c in single]
    if type(backend).__name__ == "LlamaCppBackend":
        # llama.cpp's multi-sequence kernels sum in another order than single-sequence decoding, so logits move
        # by ~0.1 and a near-tie can flip even the first token: the batch's first token must be one of the
        # single run's top alternatives, as likely there as the single run's own choice (within 0.5 nats).
        for b, s in zip(batch, single, strict=True):
            assert b.logprobs and s.logprobs
            alternatives = {t.token: t.logprob for t in s.logprobs[0].top}
            assert b.logprobs[0].token in alternatives, (b.logprobs[0], s.logprobs[0])
            assert alternatives[b.logprobs[0].token] == pytest.approx(s.logprobs[0].logprob, abs=0.5)
            assert b.logprobs[0].logprob == pytest.approx(s.logprobs[0].logprob, abs=0.5)
    else:
        assert [c.text for c in batch] == [c.text for c in single]


def test_prompt_longer_than_context_is_a_clear_error(backend: Backend) -> None:
    with pytest.raises(ContextLengthError, match=r"too long|context"):
        backend.complete(LONG, SamplingParams(max_tokens=4))


def test_unknown_adapter_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFoundError, match="adapter 'nope'"):
        backend.chat(MSG, SamplingParams(max_tokens=2), adapter="nope")


def test_truncation_only_when_asked(backend: Backend) -> None:
    if backend.name == "smollm2-135m" and type(backend).__name__ == "OpenAIBackend":
        pytest.skip("truncation is the server's business over HTTP")
    c = backend.complete(LONG, SamplingParams(max_tokens=4, truncate=True))
    assert c.usage.completion_tokens <= 4
    assert c.usage.prompt_tokens < backend.count_tokens(LONG)


def test_collect_stream_is_what_chat_returns(backend: Backend) -> None:
    p = SamplingParams(max_tokens=5)
    c = collect_stream(backend.stream_complete("hello", p))
    assert c.text == backend.complete("hello", p).text
