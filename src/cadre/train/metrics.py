"""Task metrics computed on generated answers during training (``TrainConfig.metric``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["METRICS", "exact_match", "json_match", "score"]


def _normalize(text: str) -> str:
    return " ".join(text.strip().split()).casefold()


def exact_match(prediction: str, reference: str) -> bool:
    """Equal after trimming, collapsing whitespace and case-folding."""
    return _normalize(prediction) == _normalize(reference)


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


METRICS: dict[str, Callable[[str, str], bool]] = {"exact_match": exact_match, "json_match": json_match}


def score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean of ``metric`` over the pairs (0.0 for no pairs)."""
    fn = METRICS[metric]
    if not predictions:
        return 0.0
    return sum(fn(p, r) for p, r in zip(predictions, references, strict=True)) / len(predictions)
