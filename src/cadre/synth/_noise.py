"""Surface noise real users produce: casing, missing punctuation, typos. Deterministic given a seed."""

from __future__ import annotations

import random

__all__ = ["apply_noise"]

_KEYBOARD_NEIGHBOURS = {
    "a": "qs",
    "e": "wr",
    "i": "uo",
    "o": "ip",
    "u": "yi",
    "s": "ad",
    "t": "ry",
    "n": "bm",
    "r": "et",
    "l": "k",
}


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(("swap", "drop", "double", "neighbour"))
    if op == "swap":
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    ch = word[i].lower()
    if ch in _KEYBOARD_NEIGHBOURS:
        return word[:i] + rng.choice(_KEYBOARD_NEIGHBOURS[ch]) + word[i + 1 :]
    return word


def apply_noise(text: str, seed: int, *, level: float) -> str:
    """Lower-case, drop final punctuation, or add typos to ``text`` with probability ``level`` each.

    Words containing digits, '#', '@' or '-' are left alone so that identifiers and amounts stay exact.
    """
    rng = random.Random(seed)
    if level <= 0:
        return text
    if rng.random() < level:
        text = text.lower()
    if rng.random() < level * 0.6:
        text = text.rstrip(".!")
    if rng.random() < level:
        words = text.split(" ")
        n_typos = 1 + (rng.random() < 0.3)
        for _ in range(n_typos):
            j = rng.randrange(len(words))
            if not any(c.isdigit() or c in "#@-$€£" for c in words[j]):
                words[j] = _typo(words[j], rng)
        text = " ".join(words)
    return text
