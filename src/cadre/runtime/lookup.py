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

__all__ = ["DraftPolicy", "LookupSettings", "LookupStats", "NgramIndex", "lookup_settings"]


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
        adaptive: size each draft with :class:`DraftPolicy` (measured step costs and acceptance), so drafting
            stops where it does not pay; False drafts whenever a match is found (for tests and measurements).
    """

    ngram_max: int = 3
    ngram_min: int = 1
    max_draft: int = 8
    min_acceptance: float = 0.15
    probe: int = 24
    adaptive: bool = True

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


@dataclass(eq=False)
class DraftPolicy:
    """Decides how many drafted tokens a step can afford, from what drafting has cost and gained on this machine.

    A verified draft of k tokens yields 1 + α + α² + … + αᵏ tokens on average when each drafted token is accepted
    with probability α once its predecessors were (the expected-speedup argument of Leviathan et al. 2023,
    arXiv 2211.17192, §3.4, with a free drafter), while the step grows from n to n + k tokens. Step time is fitted
    online as ``a + b * n`` (least squares with exponential forgetting over every ``llama_decode``), α per
    adapter group from its drafts. A draft is sent only when it raises expected tokens per second: on an idle CPU
    an extra token in a step is cheap and drafts pay even at modest α; on a saturated one a step's time grows
    with its tokens and drafting stops. Every ``probe_every``-th step drafts two tokens anyway, so both
    estimates keep up. Only decode steps are fitted (a prompt's prefill costs far less per token and would make
    drafts look cheap).
    """

    forget: float = 0.97
    probe_every: int = 16
    prior_alpha: float = 0.6
    prior_slope: float = 0.1  # b / a assumed until steps of different sizes were seen
    _s: list[float] = field(default_factory=lambda: [0.0] * 5)  # Σw, Σw·n, Σw·n², Σw·t, Σw·n·t
    _alpha: dict[object, tuple[float, float]] = field(default_factory=dict)  # group -> (accepted, rejections)
    _steps: int = 0

    def observe_step(self, n_tokens: int, seconds: float) -> None:
        s, f = self._s, self.forget
        for i, v in enumerate((1.0, n_tokens, n_tokens * n_tokens, seconds, n_tokens * seconds)):
            s[i] = s[i] * f + v
        self._steps += 1

    def step_cost(self) -> tuple[float, float]:
        """(a, b) of step time ≈ a + b·n."""
        w, sn, snn, st, snt = self._s
        if w <= 0:
            return 1.0, self.prior_slope
        var = w * snn - sn * sn
        mean_t, mean_n = st / w, sn / w
        if var <= 1e-9 * w * w:  # every step had the same size: no slope to fit yet
            a = mean_t / (1 + self.prior_slope * mean_n)
            return a, self.prior_slope * a
        b = max((w * snt - sn * st) / var, 0.0)
        return max(mean_t - b * mean_n, 1e-6), b

    def alpha(self, group: object) -> float:
        accepted, rejected = self._alpha.get(group, (0.0, 0.0))
        # a prior of 2 pseudo-drafts at prior_alpha, forgotten as real ones come in
        return (accepted + 2 * self.prior_alpha) / (accepted + rejected + 2)

    def record(self, group: object, drafted: int, accepted: int) -> None:
        a, r = self._alpha.get(group, (0.0, 0.0))
        self._alpha[group] = (a * self.forget + accepted, r * self.forget + (1 if accepted < drafted else 0))

    def budget(self, group: object, n_tokens: int, n_out: int, limit: int) -> int:
        """The draft length (0..limit) that maximises expected tokens per second of a step of ``n_tokens`` that
        yields ``n_out`` tokens without it."""
        if limit <= 0:
            return 0
        if self._steps % self.probe_every == 0:
            return min(limit, 2)  # a short probe: enough to keep α and the slope current, cheap if it misses
        a, b = self.step_cost()
        alpha = self.alpha(group)
        best_k, best_rate, gain, term = 0, n_out / (a + b * n_tokens), float(n_out), 1.0
        for k in range(1, limit + 1):
            term *= alpha
            gain += term
            rate = gain / (a + b * (n_tokens + k))
            if rate > best_rate:
                best_k, best_rate = k, rate
        return best_k
