"""GBNF grammars (llama.cpp's grammar format, ``grammars/README.md`` in ggml-org/llama.cpp) built from data.

``SamplingParams.grammar`` carries GBNF text; the llama.cpp backend puts a grammar sampler first in its
sampler chain, so every token it picks keeps the output inside the grammar (and, once the grammar is
complete, only end-of-generation can follow).
"""

from __future__ import annotations

from collections.abc import Sequence

from cadre.errors import ConfigError

__all__ = ["choice_grammar", "gbnf_literal"]

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


def choice_grammar(options: Sequence[str]) -> str:
    """A grammar whose only sentences are the ``options`` (a label set), each matched exactly.

    Raises:
        ConfigError: no options, or an empty one.
    """
    labels = list(dict.fromkeys(options))
    if not labels or any(not label for label in labels):
        raise ConfigError("a label grammar needs a non-empty set of non-empty labels")
    return "root ::= " + " | ".join(gbnf_literal(label) for label in labels) + "\n"
