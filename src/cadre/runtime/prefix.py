"""Prompt-prefix sharing in the llama.cpp engine: the pure parts.

A request admitted while another request of the same adapter holds the same prompt start takes that request's
KV cells for the shared tokens (in llama.cpp's unified cache a copy adds a sequence id to a cell; no data moves)
and prefills only the rest. Fixed few-shot prompts and trained system prompts are the common case: every
generalist request of one evaluation repeats the same exemplars. KV cells hold keys and values computed under
the adapter set of their decode, so only requests of the same adapter share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MIN_SHARED_TOKENS", "PrefixStats", "common_prefix", "longest_shared_prefix"]

MIN_SHARED_TOKENS = 16  # below this, waiting for another request's prefill would save less than a step


@dataclass
class PrefixStats:
    """Prompt tokens of one backend's requests: prefilled by a decode, or taken from another request's cells."""

    computed: int = 0
    reused: int = 0

    @property
    def reuse(self) -> float:
        """Reused ÷ all prompt tokens (0 before any request)."""
        total = self.computed + self.reused
        return self.reused / total if total else 0.0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def longest_shared_prefix(tokens: Sequence[int], others: Sequence[Sequence[int]]) -> tuple[int, int]:
    """``(index into others, tokens shared)`` of the prompt ``tokens`` shares most with, or ``(-1, 0)`` when
    none shares ``MIN_SHARED_TOKENS``. The last prompt token is never shared: its logits start the answer."""
    best, best_len = -1, 0
    for i, other in enumerate(others):
        n = min(common_prefix(tokens, other), len(tokens) - 1)
        if n > best_len:
            best, best_len = i, n
    return (best, best_len) if best_len >= MIN_SHARED_TOKENS else (-1, 0)
