"""GBNF grammars for constrained decoding: the output of a llama.cpp generation can be forced to match one.

:func:`json_grammar` turns OpenAI's ``response_format`` into GBNF: any JSON object (``json_object``), or JSON
matching a schema (``json_schema``). Both come from llama-cpp-python's port of llama.cpp's ``grammars/json.gbnf``
and ``json_schema_to_grammar`` (``llama_cpp.llama_grammar``, MIT licence), which the llama.cpp backend already
ships with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cadre.errors import ConfigError

__all__ = ["json_grammar"]


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
