"""Prompt-lookup (n-gram) drafting for speculative decoding: guess the next tokens by copying them from the prompt
and the text generated so far.

Extraction-style answers repeat spans of their input (an invoice number, a vendor's name, a date), so when the
last few generated tokens also occur earlier in the sequence, the tokens that followed them there are a cheap
guess at what comes next. The engine verifies a guess in the same ``llama_decode`` as the real next token (logits
at every position) and keeps the longest prefix the model itself would have produced, so greedy output is
unchanged. The idea is prompt lookup decoding (Saxena 2023, github.com/apoorvumang/prompt-lookup-decoding); the
verification is speculative decoding's (Leviathan et al. 2023, arXiv 2211.17192).

This module is pure Python: :class:`LookupSettings` (the knobs) and :class:`NgramIndex` (one sequence's tokens,
indexed so a draft costs O(``ngram_max``) per token, not a scan of the history).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cadre.errors import ConfigError

__all__ = ["LookupSettings", "LookupStats", "NgramIndex", "lookup_settings"]


@dataclass(frozen=True, kw_only=True)
class LookupSettings:
    """How a sequence drafts tokens by prompt lookup.

    Attributes:
        ngram_max: the longest suffix of the sequence looked up (longer matches are tried first).
        ngram_min: the shortest suffix looked up.
        max_draft: the most tokens guessed per step (the draft then shrinks and grows with acceptance).
        min_acceptance: a sequence stops drafting once, after ``probe`` drafted tokens, fewer than this share
            of them were accepted (drafts that never land only cost compute).
        probe: drafted tokens a sequence gets before ``min_acceptance`` is checked.
    """

    ngram_max: int = 3
    ngram_min: int = 1
    max_draft: int = 8
    min_acceptance: float = 0.15
    probe: int = 24

    def __post_init__(self) -> None:
        if not 1 <= self.ngram_min <= self.ngram_max <= 8:
            raise ConfigError(
                f"prompt lookup needs 1 <= ngram_min <= ngram_max <= 8, got {self.ngram_min}..{self.ngram_max}"
            )
        if not 1 <= self.max_draft <= 64:
            raise ConfigError(f"prompt lookup max_draft must be in 1..64, got {self.max_draft}")
        if not 0 <= self.min_acceptance < 1:
            raise ConfigError(f"prompt lookup min_acceptance must be in [0, 1), got {self.min_acceptance}")
        if self.probe < 1:
            raise ConfigError(f"prompt lookup probe must be >= 1, got {self.probe}")


def lookup_settings(value: bool | LookupSettings | None) -> LookupSettings | None:
    """Normalise the ``prompt_lookup`` option: True = the defaults, False/None = off, or the settings given."""
    if value is None or value is False:
        return None
    if value is True:
        return LookupSettings()
    if isinstance(value, LookupSettings):
        return value
    raise ConfigError(
        f"prompt_lookup must be True, False or a LookupSettings, got {type(value).__name__}; "
        "pass prompt_lookup=False to turn it off"
    )


@dataclass
class LookupStats:
    """Counters of one backend's prompt lookup: steps that carried a draft, tokens drafted and accepted."""

    drafts: int = 0
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance(self) -> float:
        """Accepted ÷ drafted tokens (0 when nothing was drafted)."""
        return self.accepted / self.drafted if self.drafted else 0.0

    def add(self, drafted: int, accepted: int) -> None:
        self.drafts += 1
        self.drafted += drafted
        self.accepted += accepted


@dataclass(eq=False)
class NgramIndex:
    """One sequence's tokens (prompt, then generated) with, for each n-gram, where its latest continuation starts.

    ``follow[n][gram]`` is the position just after the latest occurrence of ``gram`` that is followed by a token,
    so the current suffix never matches itself.
    """

    settings: LookupSettings
    tokens: list[int] = field(default_factory=list)
    follow: dict[int, dict[tuple[int, ...], int]] = field(default_factory=dict)
    draft_len: int = 0
    drafted: int = 0
    accepted: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        self.follow = {n: {} for n in range(s.ngram_min, s.ngram_max + 1)}
        self.draft_len = s.max_draft
        tokens, self.tokens = self.tokens, []
        self.extend(tokens)

    def extend(self, tokens: Iterable[int]) -> None:
        for tok in tokens:
            p = len(self.tokens)  # the n-grams ending just before p now have a continuation: tok
            for n, table in self.follow.items():
                if p >= n:
                    table[tuple(self.tokens[p - n : p])] = p
            self.tokens.append(tok)

    @property
    def enabled(self) -> bool:
        """False once enough drafts were tried and too few landed."""
        s = self.settings
        return self.drafted < s.probe or self.accepted >= s.min_acceptance * self.drafted

    def draft(self, limit: int) -> list[int]:
        """Up to ``min(limit, draft_len)`` tokens that followed the longest earlier match of the current suffix."""
        k = min(limit, self.draft_len)
        if k <= 0 or not self.enabled:
            return []
        toks = self.tokens
        for n in range(self.settings.ngram_max, self.settings.ngram_min - 1, -1):
            if len(toks) <= n:
                continue
            start = self.follow[n].get(tuple(toks[-n:]))
            if start is not None:
                return toks[start : start + k]
        return []

    def record(self, drafted: int, accepted: int) -> None:
        """Adapt the draft length to how the last draft fared: grow after a full hit, halve after a miss."""
        self.drafted += drafted
        self.accepted += accepted
        if accepted == drafted:
            self.draft_len = min(self.settings.max_draft, self.draft_len + 2)
        elif accepted == 0:
            self.draft_len = max(1, self.draft_len // 2)
        else:
            self.draft_len = max(1, accepted + 1)
