"""Prompt-prefix sharing: the prefix search (fast) and, on the bundled model, the same answers with fewer
prompt tokens computed, a source that leaves before the requests that took its cells, and adapters kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cadre.runtime import ChatMessage, ChatRequest, Completion, SamplingParams, load_backend
from cadre.runtime.llamacpp import LlamaCppBackend
from cadre.runtime.prefix import MIN_SHARED_TOKENS, PrefixStats, common_prefix, longest_shared_prefix


def test_the_longest_shared_prompt_start_is_found_and_the_last_token_never_shared() -> None:
    base = list(range(100))
    assert common_prefix(base, [*base[:40], -1]) == 40
    assert common_prefix(base[:10], base) == 10
    others = [base[:30] + [7] * 5, [*base[:60], 9], [5] * 100]
    assert longest_shared_prefix(base, others) == (1, 60)
    # a prompt that is all shared keeps its last token to prefill: the answer starts from its logits
    assert longest_shared_prefix(base[:50], [base]) == (0, 49)
    short = [*base[: MIN_SHARED_TOKENS - 1], -5]
    assert longest_shared_prefix(base, [short]) == (-1, 0)
    assert longest_shared_prefix(base, []) == (-1, 0)


def test_reuse_is_the_share_of_prompt_tokens_not_computed() -> None:
    assert PrefixStats().reuse == 0.0
    assert PrefixStats(computed=25, reused=75).reuse == 0.75


# -- on the bundled model ------------------------------------------------------------------------------------

SYSTEM = (
    "You are a support assistant for an online shop. Answer in one short sentence. Orders ship within two "
    "business days; refunds take five to seven days after the parcel arrives back at the warehouse. Passwords "
    "are reset from the login page with the link 'Forgot password'. Invoices are in the account's Orders tab."
)
QUESTIONS = [
    "How long does a refund take?",
    "Where do I find my invoice?",
    "How do I reset my password?",
    "When will my order ship?",
]


def ask(question: str, max_tokens: int, adapter: str | None) -> ChatRequest:
    messages = [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=question)]
    params = SamplingParams(max_tokens=max_tokens, logprobs=True, top_logprobs=1)
    return ChatRequest(messages=messages, params=params, adapter=adapter)


def requests(max_tokens: list[int], adapter: str | None = None) -> list[ChatRequest]:
    return [ask(q, m, adapter) for q, m in zip(QUESTIONS, max_tokens, strict=True)]


def assert_agree(batched: list[Completion], alone: list[Completion]) -> None:
    """Same answers as one request at a time, up to the engine's batching noise.

    The bundled model is Q4_1: a token computed in another batch shape differs by up to ~0.16 nats (measured
    between shared, plain concurrent and one-at-a-time decoding), enough to flip a near-tie later in an answer. Cells of the wrong tokens or
    positions move the log-probabilities by whole nats, and llama.cpp refuses a batch whose
    positions do not follow a sequence's cells."""
    for b, a in zip(batched, alone, strict=True):
        assert b.logprobs and a.logprobs
        for x, y in zip(b.logprobs, a.logprobs):
            assert abs(x.logprob - y.logprob) < 0.3, (b.text, a.text)
            if x.token != y.token:
                break


@pytest.fixture(scope="module")
def engines(lora_pair: dict[str, Path]) -> Iterator[tuple[LlamaCppBackend, LlamaCppBackend]]:
    # A cache of 2.5 prompts: without sharing two requests run at once, with it all four.
    kw = {"adapters": {"alpha": lora_pair["alpha"]}, "n_ctx": 512, "n_parallel": 4, "n_threads": 1}
    on = load_backend("smollm2-135m", prompt_lookup=False, kv_size=320, **kw)
    off = load_backend("smollm2-135m", prompt_lookup=False, prefix_sharing=False, kv_size=320, **kw)
    assert isinstance(on, LlamaCppBackend) and isinstance(off, LlamaCppBackend)
    yield on, off
    on.close()
    off.close()


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [None, "alpha"])
def test_shared_prefixes_give_the_same_answers_with_fewer_tokens_computed(
    engines: tuple[LlamaCppBackend, LlamaCppBackend], adapter: str | None
) -> None:
    on, off = engines
    before = PrefixStats(on.prefix_stats.computed, on.prefix_stats.reused)
    # the first request leaves after three tokens while the others still use the cells it computed
    lengths = [3, 24, 24, 24]
    shared = on.batch_chat(requests(lengths, adapter))
    alone = [off.chat(r.messages, r.params, adapter=adapter) for r in requests(lengths, adapter)]
    assert_agree(shared, alone)
    assert [c.usage.prompt_tokens for c in shared] == [c.usage.prompt_tokens for c in alone]
    reused = on.prefix_stats.reused - before.reused
    computed = on.prefix_stats.computed - before.computed
    prompt = sum(c.usage.prompt_tokens for c in shared)
    assert reused + computed == prompt
    assert reused > prompt / 2  # three of four requests took the system prompt's cells
    assert off.prefix_stats.reused == 0
    # and again, now that the first wave has left the cache: nothing stale is reused
    assert_agree(on.batch_chat(requests(lengths, adapter)), alone)


@pytest.mark.slow
@pytest.mark.parametrize("second", [None, "alpha"])
def test_a_request_takes_cells_only_from_a_running_request_of_its_adapter(
    engines: tuple[LlamaCppBackend, LlamaCppBackend], second: str | None
) -> None:
    on, off = engines
    before = on.prefix_stats.reused
    first, late = ask(QUESTIONS[0], 24, None), ask(QUESTIONS[1], 16, second)
    stream = on.stream_chat(first.messages, first.params)
    next(stream)  # the first prompt's cells are in the cache
    answer = on.chat(late.messages, late.params, adapter=second)
    list(stream)
    assert_agree([answer], [off.chat(late.messages, late.params, adapter=second)])
    if second is None:
        assert on.prefix_stats.reused > before
    else:  # cells computed under another adapter set hold other keys and values
        assert on.prefix_stats.reused == before
