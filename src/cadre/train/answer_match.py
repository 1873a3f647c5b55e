"""Answer comparisons: whether a generated answer matches the reference, and the one text normalisation.

Training scores generations with :data:`ANSWER_MATCHES` (``TrainConfig.metric``); the evaluation's
``exact_match`` metric normalises with :func:`normalize_answer` too.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ANSWER_MATCHES", "json_match", "normalize_answer", "normalized_match", "score"]

_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(
    text: Any,
    *,
    collapse_whitespace: bool = False,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
) -> str:
    """``text`` stripped; optionally with inner whitespace runs as one space, case-folded, punctuation dropped."""
    s = str(text).strip()
    if collapse_whitespace:
        s = " ".join(s.split())
    if ignore_case:
        s = s.casefold()
    if ignore_punctuation:
        s = s.translate(_NO_PUNCTUATION)
    return s


def normalized_match(prediction: str, reference: str) -> bool:
    """Equal after trimming, collapsing whitespace and case-folding (``TrainConfig.metric="exact_match"``)."""

    def norm(text: str) -> str:
        return normalize_answer(text, collapse_whitespace=True, ignore_case=True)

    return norm(prediction) == norm(reference)


def _first_json(text: str) -> Any:
    """The first JSON value in ``text`` (models often wrap it in prose or code fences)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON value")


def json_match(prediction: str, reference: str) -> bool:
    """The first JSON value in the prediction equals the reference's (key order and spacing ignored)."""
    try:
        return bool(_first_json(prediction) == json.loads(reference))
    except ValueError:
        return False


# TrainConfig.metric value -> comparison ("exact_match" is the name users type; it matches normalized text).
ANSWER_MATCHES: dict[str, Callable[[str, str], bool]] = {
    "exact_match": normalized_match,
    "json_match": json_match,
}


def score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean of ``metric`` over the pairs (0.0 for no pairs)."""
    fn = ANSWER_MATCHES[metric]
    if not predictions:
        return 0.0
    return sum(fn(p, r) for p, r in zip(predictions, references, strict=True)) / len(predictions)
