"""GBNF grammars for constrained decoding: the output of a llama.cpp generation can be forced to match one.

GBNF is llama.cpp's grammar format (``grammars/README.md`` in ggml-org/llama.cpp). ``SamplingParams.grammar``
carries its text; the llama.cpp backend puts a grammar sampler first in its sampler chain, so every token it picks
keeps the output inside the grammar. :func:`choice_grammar` allows exactly one of a label set, :data:`NUMBER_GRAMMAR` a plain decimal number;
:func:`json_grammar` turns OpenAI's ``response_format`` into GBNF: any JSON object (``json_object``), or JSON
matching a schema (``json_schema``); the JSON grammars come from llama-cpp-python's port of llama.cpp's ``grammars/json.gbnf``
and ``json_schema_to_grammar`` (``llama_cpp.llama_grammar``, MIT licence), which the llama.cpp backend already
ships with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cadre.errors import ConfigError

__all__ = ["NUMBER_GRAMMAR", "choice_grammar", "gbnf_literal", "json_grammar"]

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (double-quoted; backslash, quote and control characters escaped)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


NUMBER_GRAMMAR = 'root ::= "-"? [0-9]+ ("." [0-9]+)?\n'
"""A plain decimal number (no sign other than minus, no thousands separators, no exponent)."""


def choice_grammar(options: Sequence[str]) -> str:
    """A grammar whose only sentences are the ``options`` (a label set), each matched exactly.

    Raises:
        ConfigError: no options, or an empty one.
    """
    labels = list(dict.fromkeys(options))
    if not labels or any(not label for label in labels):
        raise ConfigError("a label grammar needs a non-empty set of non-empty labels")
    return "root ::= " + " | ".join(gbnf_literal(label) for label in labels) + "\n"


def json_grammar(schema: Mapping[str, Any] | None = None) -> str:
    """GBNF for a JSON object (``schema`` None) or for JSON matching ``schema`` (a JSON Schema).

    Raises:
        ConfigError: the schema uses something the converter does not support.
    """
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if schema is None:
        return str(JSON_GBNF)
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except (ValueError, KeyError, TypeError, NotImplementedError, RecursionError) as err:
        raise ConfigError(
            f"response_format.json_schema.schema cannot be turned into a grammar: {err}"
        ) from None
