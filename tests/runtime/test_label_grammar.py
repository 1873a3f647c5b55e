"""Label- and number-constrained decoding: GBNF from a label set or for a number, honoured by the llama.cpp backend."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from cadre.errors import ConfigError
from cadre.runtime import SamplingParams, load_backend
from cadre.runtime.grammars import NUMBER_GRAMMAR, choice_grammar, gbnf_literal

LABELS = ["alarm_query", "play_music", 'say "hi"', "weather\\query", "transport ticket"]
ASK = [
    {"role": "system", "content": "Answer in a long friendly sentence."},
    {"role": "user", "content": "What is the weather like in Paris tomorrow?"},
]


def test_literals_and_choice_grammar_escape_quotes_backslashes_and_controls() -> None:
    assert gbnf_literal('say "hi"') == r'"say \"hi\""'
    assert gbnf_literal("a\\b\nc\x01") == r'"a\\b\nc\x01"'
    grammar = choice_grammar(["yes", "no", "yes"])
    assert grammar == 'root ::= "yes" | "no"\n'
    with pytest.raises(ConfigError, match="non-empty"):
        choice_grammar([])
    with pytest.raises(ConfigError, match="non-empty"):
        choice_grammar(["yes", ""])


@pytest.fixture(scope="module")
def llama() -> Iterator:
    backend = load_backend("smollm2-135m", n_ctx=512, n_parallel=4, n_threads=2)
    yield backend
    backend.close()


@pytest.mark.slow
def test_constrained_decoding_never_returns_a_non_label(llama) -> None:
    free = llama.chat(ASK, SamplingParams(max_tokens=24)).text
    assert (
        free.strip() not in LABELS
    )  # unconstrained, the model writes prose: the constraint is doing the work
    grammar = choice_grammar(LABELS)
    answers = [llama.chat(ASK, SamplingParams(max_tokens=24, grammar=grammar)).text]
    for seed in range(12):  # sampling at a high temperature explores many paths; each must end on a label
        params = SamplingParams(max_tokens=24, temperature=1.8, seed=seed, grammar=grammar)
        answers.append(llama.chat(ASK, params).text)
    assert all(a in LABELS for a in answers), answers
    assert len(set(answers)) > 1  # not one label forced by accident


@pytest.mark.slow
def test_number_constrained_decoding_answers_a_plain_number(llama) -> None:
    answers = [llama.chat(ASK, SamplingParams(max_tokens=8, grammar=NUMBER_GRAMMAR)).text]
    for seed in range(6):
        params = SamplingParams(max_tokens=8, temperature=1.8, seed=seed, grammar=NUMBER_GRAMMAR)
        answers.append(llama.chat(ASK, params).text)
    # max_tokens may cut a fraction after its point: the answer is still a number once that point is dropped
    assert all(re.fullmatch(r"-?[0-9]+(\.[0-9]*)?", a) for a in answers), answers


@pytest.mark.slow
def test_an_invalid_grammar_is_a_config_error(llama) -> None:
    with pytest.raises(ConfigError, match="not valid GBNF"):
        llama.chat(ASK, SamplingParams(max_tokens=4, grammar="root ::= ( unclosed"))
