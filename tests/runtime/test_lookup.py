"""Prompt-lookup drafting: the n-gram index (fast) and, on the bundled model, output identical to plain greedy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cadre.errors import ConfigError
from cadre.runtime import SamplingParams, load_backend
from cadre.runtime.llamacpp import LlamaCppBackend
from cadre.runtime.lookup import DraftPolicy, LookupSettings, NgramIndex, lookup_settings


def test_draft_copies_what_followed_the_longest_earlier_match() -> None:
    idx = NgramIndex(LookupSettings(ngram_max=3, max_draft=4), tokens=[1, 2, 3, 4, 5, 6, 9, 2, 3])
    # the suffix (2, 3) occurred at 1..2, followed by 4 5 6 9
    assert idx.draft(10) == [4, 5, 6, 9]
    assert idx.draft(2) == [4, 5]
    idx.extend([4])  # now (2, 3, 4) matches; the continuation is 5 6 9 2
    assert idx.draft(10) == [5, 6, 9, 2]


def test_the_latest_occurrence_wins_and_the_suffix_never_matches_itself() -> None:
    idx = NgramIndex(LookupSettings(ngram_min=1, ngram_max=1), tokens=[7, 1, 7, 2, 7])
    assert idx.draft(1) == [2]  # 7 was last followed by 2
    assert NgramIndex(LookupSettings(), tokens=[5, 6, 7]).draft(4) == []  # nothing repeats: no draft


def test_draft_length_adapts_and_a_sequence_that_never_hits_stops_drafting() -> None:
    s = LookupSettings(ngram_min=1, ngram_max=1, max_draft=8, probe=12, min_acceptance=0.5)
    idx = NgramIndex(s, tokens=[1, 2, 3, 4, 5, 6, 7, 8, 9, 1])
    assert len(idx.draft(99)) == 8
    idx.record(8, 0)
    assert len(idx.draft(99)) == 4  # halved after a miss
    idx.record(4, 2)
    assert idx.draft_len == 3  # the accepted length + 1
    assert idx.enabled is False  # 2 of 12 accepted after the probe: < 50%
    assert idx.draft(99) == []


def test_the_policy_drafts_where_extra_tokens_are_cheap_and_stops_where_they_are_not() -> None:
    cheap, dear = DraftPolicy(probe_every=1000), DraftPolicy(probe_every=1000)
    for n in (1, 2, 5, 9):
        cheap.observe_step(n, 0.005 + 0.0005 * n)  # idle CPU: a fixed cost dominates
        dear.observe_step(n, 0.020 + 0.038 * n)  # saturated CPU: time grows with every token
    for _ in range(8):
        cheap.record("g", 4, 1)  # α ≈ 0.5
        dear.record("g", 4, 1)
    assert cheap.step_cost()[1] == pytest.approx(0.0005, rel=0.01)
    assert cheap.budget("g", 1, 1, 8) >= 2
    assert dear.budget("g", 1, 1, 8) == 0
    assert cheap.budget("g", 1, 1, 0) == 0


def test_settings_are_checked() -> None:
    assert lookup_settings(True) == LookupSettings()
    assert lookup_settings(False) is None
    with pytest.raises(ConfigError, match="ngram_min"):
        LookupSettings(ngram_min=4, ngram_max=2)
    with pytest.raises(ConfigError, match="max_draft"):
        LookupSettings(max_draft=0)
    with pytest.raises(ConfigError, match="prompt_lookup must be"):
        lookup_settings("yes")  # type: ignore[arg-type]


# -- on the bundled model ------------------------------------------------------------------------------------

INVOICE = [
    {
        "role": "system",
        "content": 'Extract the invoice fields. Reply with one JSON object with keys "invoice_number", "vendor", '
        '"total".',
    },
    {"role": "user", "content": "INVOICE 166504 | Ironbark Tools | Date 19-Dec-2025 | Total EUR 2,664.61"},
]
REPEAT = [
    {"role": "user", "content": "Repeat this sentence exactly: the quick brown fox jumps over the lazy dog."}
]


@pytest.fixture(scope="module")
def pair(lora_pair: dict[str, Path]) -> Iterator[tuple[LlamaCppBackend, LlamaCppBackend]]:
    kw = {"adapters": {"alpha": lora_pair["alpha"]}, "n_ctx": 512, "n_parallel": 2, "n_threads": 1}
    on = load_backend("smollm2-135m", prompt_lookup=LookupSettings(adaptive=False), **kw)
    off = load_backend("smollm2-135m", prompt_lookup=False, **kw)
    assert isinstance(on, LlamaCppBackend) and isinstance(off, LlamaCppBackend)
    yield on, off
    on.close()
    off.close()


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [None, "alpha"])
def test_lookup_output_equals_plain_greedy(
    pair: tuple[LlamaCppBackend, LlamaCppBackend], adapter: str | None
) -> None:
    on, off = pair
    p = SamplingParams(max_tokens=48, logprobs=True)
    for msgs in (INVOICE, REPEAT):
        before = on.lookup_stats.accepted
        fast, plain = on.chat(msgs, p, adapter=adapter), off.chat(msgs, p, adapter=adapter)
        assert fast.text == plain.text
        assert fast.usage == plain.usage and fast.finish_reason == plain.finish_reason
        assert fast.logprobs and plain.logprobs
        assert [t.token for t in fast.logprobs] == [t.token for t in plain.logprobs]
        assert on.lookup_stats.accepted > before  # the drafts landed: this ran speculatively
    assert off.lookup_stats.drafts == 0


@pytest.mark.slow
def test_sampling_does_not_draft_and_an_adapter_can_turn_lookup_off(
    pair: tuple[LlamaCppBackend, LlamaCppBackend], lora_pair: dict[str, Path]
) -> None:
    on, _ = pair
    drafts = on.lookup_stats.drafts
    on.chat(REPEAT, SamplingParams(max_tokens=24, temperature=0.8, seed=1))
    assert on.lookup_stats.drafts == drafts
    on.load_adapter("plain", lora_pair["alpha"], prompt_lookup=False)
    on.chat(REPEAT, SamplingParams(max_tokens=24), adapter="plain")
    assert on.lookup_stats.drafts == drafts
    on.chat(REPEAT, SamplingParams(max_tokens=24), adapter="alpha")
    assert on.lookup_stats.drafts > drafts
    on.remove_adapter("plain")
