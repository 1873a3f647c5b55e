"""Metrics: how a prediction is scored against the reference, per item and over the whole run.

A metric is any object with ``name``, ``score(prediction, reference) -> float`` (per item, in [0, 1]) and
``aggregate(predictions, references) -> float`` (over the run; the mean of the scores for most metrics,
macro-F1 over labels for ``macro_f1``). Built-ins are registered in :data:`METRICS` under their names; add
your own with ``METRICS.register("name", factory)`` or the ``cadre.metrics`` entry-point group. A factory is
called with the keyword options of the task spec's ``metric:`` block.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from cadre.errors import ConfigError
from cadre.registry import Registry
from cadre.train import normalize_answer

__all__ = [
    "METRICS",
    "Accuracy",
    "ExactMatch",
    "JsonFieldMatch",
    "MacroF1",
    "Metric",
    "NumericMatch",
    "TokenF1",
    "build_metric",
    "normalize_label",
    "parse_number",
]


@runtime_checkable
class Metric(Protocol):
    """Scores predictions against references."""

    name: str

    def score(self, prediction: Any, reference: Any) -> float:
        """Per-item score in [0, 1]; 1 means fully correct. ``prediction`` may be None (nothing extracted)."""
        ...

    def aggregate(self, predictions: Sequence[Any], references: Sequence[Any]) -> float:
        """The run-level value (e.g. the mean score, or macro-F1 over labels)."""
        ...


METRICS: Registry[Callable[..., Metric]] = Registry("metrics")

_WS = re.compile(r"\s+")
_PUNCT_EDGES = string.punctuation + " \t\n\"'`«»“”‘’"


def normalize_label(text: Any) -> str:
    """Casefold, collapse whitespace, treat ``_``/``-`` as spaces and drop punctuation at the ends."""
    s = str(text).casefold().replace("_", " ").replace("-", " ")
    return _WS.sub(" ", s).strip(_PUNCT_EDGES)


_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+")


def parse_number(value: Any) -> float | None:
    """A float from a number or a string such as ``"$1,234.50"``, ``"-3"`` or ``"2.5e3"``; None if none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    m = _NUMBER.search(str(value))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", "").replace("−", "-"))
    except ValueError:
        return None


def _mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores) if scores else 0.0


class _MeanMetric:
    name = "metric"
    corpus_level = False  # the run-level value is the mean of the per-item scores

    def score(self, prediction: Any, reference: Any) -> float:
        raise NotImplementedError

    def aggregate(self, predictions: Sequence[Any], references: Sequence[Any]) -> float:
        return _mean([self.score(p, r) for p, r in zip(predictions, references, strict=True)])


class Accuracy(_MeanMetric):
    """1 when the normalized prediction equals the normalized reference (labels, short answers)."""

    name = "accuracy"

    def score(self, prediction: Any, reference: Any) -> float:
        if prediction is None:
            return 0.0
        return float(normalize_label(prediction) == normalize_label(reference))


class ExactMatch(_MeanMetric):
    """1 when the prediction equals the reference after stripping (optionally ignoring case/punctuation)."""

    name = "exact_match"

    def __init__(self, *, ignore_case: bool = False, ignore_punctuation: bool = False) -> None:
        self.ignore_case = ignore_case
        self.ignore_punctuation = ignore_punctuation

    def _norm(self, x: Any) -> str:
        return normalize_answer(x, ignore_case=self.ignore_case, ignore_punctuation=self.ignore_punctuation)

    def score(self, prediction: Any, reference: Any) -> float:
        if prediction is None:
            return 0.0
        return float(self._norm(prediction) == self._norm(reference))


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _squad_tokens(text: str) -> list[str]:
    # SQuAD v1.1 answer normalization: lowercase, drop punctuation and articles, split on whitespace.
    s = str(text).lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    return _ARTICLES.sub(" ", s).split()


class TokenF1(_MeanMetric):
    """Token-overlap F1 between prediction and reference (SQuAD, Rajpurkar et al. 2016)."""

    name = "token_f1"

    def score(self, prediction: Any, reference: Any) -> float:
        if prediction is None:
            return 0.0
        pred, ref = _squad_tokens(str(prediction)), _squad_tokens(str(reference))
        if not pred or not ref:
            return float(pred == ref)
        common = sum((Counter(pred) & Counter(ref)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(pred), common / len(ref)
        return 2 * precision * recall / (precision + recall)


class NumericMatch(_MeanMetric):
    """1 when |prediction - reference| <= max(abs_tol, rel_tol * |reference|)."""

    name = "numeric_match"

    def __init__(self, *, abs_tol: float = 1e-6, rel_tol: float = 0.0) -> None:
        if abs_tol < 0 or rel_tol < 0:
            raise ConfigError(
                f"numeric_match tolerances must be >= 0, got abs_tol={abs_tol}, rel_tol={rel_tol}"
            )
        self.abs_tol = abs_tol
        self.rel_tol = rel_tol

    def close(self, p: float, r: float) -> bool:
        return abs(p - r) <= max(self.abs_tol, self.rel_tol * abs(r))

    def score(self, prediction: Any, reference: Any) -> float:
        p, r = parse_number(prediction), parse_number(reference)
        if p is None or r is None:
            return 0.0
        return float(self.close(p, r))


def _as_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            obj = json.loads(value)
        except json.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


class JsonFieldMatch(_MeanMetric):
    """The fraction of the reference's fields (or the listed ``fields``) the predicted object gets right.

    Numbers compare with ``abs_tol``/``rel_tol``; strings with :func:`normalize_label`; other values by
    equality. An item counts as correct only when every field matches (score 1).
    """

    name = "json_field_match"

    def __init__(
        self, *, fields: Sequence[str] | None = None, abs_tol: float = 1e-6, rel_tol: float = 0.0
    ) -> None:
        self.fields = list(fields) if fields else None
        self._num = NumericMatch(abs_tol=abs_tol, rel_tol=rel_tol)

    def field_matches(self, pred: Any, ref: Any) -> bool:
        if isinstance(ref, int | float) and not isinstance(ref, bool):
            p = parse_number(pred)
            return p is not None and self._num.close(p, float(ref))
        if isinstance(ref, str):
            return pred is not None and normalize_label(pred) == normalize_label(ref)
        return bool(pred == ref)

    def score(self, prediction: Any, reference: Any) -> float:
        ref = _as_object(reference)
        if ref is None:
            raise ConfigError(
                f"json_field_match needs JSON objects as references, got {str(reference)[:60]!r}; "
                "use a `target` field holding an object"
            )
        pred = _as_object(prediction)
        if pred is None:
            return 0.0
        keys = self.fields or list(ref)
        if not keys:
            return float(pred == ref)
        return sum(self.field_matches(pred.get(k), ref.get(k)) for k in keys) / len(keys)


class MacroF1:
    """Per item: label match (as :class:`Accuracy`); over the run: the unweighted mean F1 of the labels.

    The labels are those present in the references, so a missing prediction costs recall without adding a
    spurious class (scikit-learn's ``f1_score(average="macro", labels=sorted(set(y_true)))``).
    """

    name = "macro_f1"
    corpus_level = True  # not a mean of per-item scores: bootstrap recomputes it on each resample

    def score(self, prediction: Any, reference: Any) -> float:
        return Accuracy().score(prediction, reference)

    def aggregate(self, predictions: Sequence[Any], references: Sequence[Any]) -> float:
        refs = [normalize_label(r) for r in references]
        preds = [None if p is None else normalize_label(p) for p in predictions]
        labels = sorted(set(refs))
        if not labels:
            return 0.0
        f1s = []
        for label in labels:
            tp = sum(1 for p, r in zip(preds, refs) if p == label and r == label)
            fp = sum(1 for p, r in zip(preds, refs) if p == label and r != label)
            fn = sum(1 for p, r in zip(preds, refs) if p != label and r == label)
            denom = 2 * tp + fp + fn
            f1s.append(2 * tp / denom if denom else 0.0)
        return sum(f1s) / len(f1s)


for _name, _cls in (
    ("accuracy", Accuracy),
    ("exact_match", ExactMatch),
    ("token_f1", TokenF1),
    ("numeric_match", NumericMatch),
    ("json_field_match", JsonFieldMatch),
    ("macro_f1", MacroF1),
):
    METRICS.register(_name, _cls)


def build_metric(name: str, options: dict[str, Any] | None = None) -> Metric:
    """Instantiate the registered metric ``name`` with its options; errors name the bad option."""
    factory = METRICS.get(name)
    try:
        metric = factory(**(options or {}))
    except TypeError as err:
        raise ConfigError(f"metric {name!r}: bad options {options}: {err}") from None
    if not isinstance(metric, Metric):
        raise ConfigError(f"metric {name!r} does not implement score() and aggregate()")
    return metric
