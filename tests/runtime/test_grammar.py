"""Grammar-constrained decoding in the llama.cpp backend (``SamplingParams.grammar``, GBNF)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadre.errors import ConfigError
from cadre.runtime import SamplingParams, load_backend
from cadre.runtime.grammars import json_grammar
from cadre.runtime.llamacpp import LlamaCppBackend


@pytest.fixture(scope="module")
def backend(smollm2_gguf: Path) -> Iterator[LlamaCppBackend]:
    b = load_backend(str(smollm2_gguf), n_ctx=512)
    assert isinstance(b, LlamaCppBackend)
    yield b
    b.close()


def ask(backend: LlamaCppBackend, text: str, **params: object) -> str:
    return backend.chat([{"role": "user", "content": text}], SamplingParams(**params)).text  # type: ignore[arg-type]


def test_a_grammar_restricts_the_output(backend: LlamaCppBackend) -> None:
    free = ask(backend, "Is the sky blue?", max_tokens=8)
    assert free not in ("yes", "no")  # the unconstrained answer is a sentence
    assert ask(backend, "Is the sky blue?", max_tokens=8, grammar='root ::= "yes" | "no"') in ("yes", "no")


def test_a_json_schema_grammar_gives_matching_json(backend: LlamaCppBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    text = ask(backend, "Describe Bob, 30, as JSON.", max_tokens=40, grammar=json_grammar(schema))
    data = json.loads(text)
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


def test_invalid_gbnf_is_a_config_error_before_generation(backend: LlamaCppBackend) -> None:
    with pytest.raises(ConfigError, match="GBNF"):
        ask(backend, "hi", max_tokens=2, grammar="root ::= (")
    assert ask(backend, "hi", max_tokens=2)  # the engine still serves
