"""Typed settings of a router: which strategy, how it is calibrated, how conversations are handled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cadre.config.base import StrictModel

__all__ = ["RouterSpec", "RuleSet", "RulesSpec"]


class RouterSpec(StrictModel):
    """How ``fit_router`` builds a router (also the ``router:`` block of an ecosystem file)."""

    strategy: str = "auto"
    """A registered router name (``centroid``, ``knn``, ``linear``, ``rules`` or a plug-in), or ``auto``:
    try every name in ``candidates`` and keep the best by cross-validated accuracy."""
    candidates: list[str] = Field(default_factory=lambda: ["centroid", "knn", "linear"])
    """Embedding strategies ``auto`` chooses between."""
    min_examples_per_route: int = Field(default=8, ge=2)
    """Fewer labelled examples than this for any route is an error (the message says how many to add)."""
    folds: int = Field(default=5, ge=2, le=20)
    """Cross-fitting folds: out-of-fold scores pick the strategy and calibrate temperature and the OOD gate."""
    k: int = Field(default=10, ge=1)
    """Neighbours for the kNN strategy and for the nearest-neighbour out-of-domain score."""
    C: float = Field(default=10.0, gt=0)
    """Inverse L2 regularisation of the linear head (scikit-learn ``LogisticRegression``)."""
    ood_alpha: float | None = Field(default=0.05, gt=0, lt=1)
    """Share of in-domain requests the out-of-domain gate may send to the generalist (conformal guarantee:
    at most this share in expectation, on exchangeable traffic). None disables the gate."""
    min_confidence: float = Field(default=0.0, ge=0, lt=1)
    """Below this calibrated route probability, the request goes to the generalist (0 = never)."""
    context_turns: int = Field(default=2, ge=0)
    """Multi-turn: how many earlier user turns are mixed into the last one."""
    context_weight: float = Field(default=0.5, ge=0, le=1)
    """Multi-turn: weight of the earlier turns' embedding against the last turn's."""
    switch_confidence: float = Field(default=0.8, ge=0, le=1)
    """Multi-turn: a conversation leaves its current specialist only when the new route's probability reaches
    this (or the out-of-domain gate fires)."""
    embedding_model: str | None = None
    """Embedding model (a bundled name or a sentence-transformers folder); None = bundled all-MiniLM-L6-v2."""
    embedding_precision: Literal["fp32", "bf16", "int8"] = "fp32"
    """``int8`` (dynamic quantisation) roughly halves routing latency on CPU; ``bf16`` is in between."""
    embedding_runtime: Literal["torch", "onnx"] = "torch"
    """``onnx``: run the encoder on ONNX Runtime (exported once per machine and cached; about 3x less CPU per
    request than torch on the bundled MiniLM, same fp32 numbers)."""
    max_seq_length: int | None = Field(default=None, ge=8)
    """Truncate requests to this many tokens before embedding (None = the model's own limit, 256 for MiniLM):
    bounds the worst-case latency of long requests; short ones are unchanged."""
    latency_budget_ms: float | None = Field(default=None, gt=0)
    """Per-request p99 budget in ms (one core): ``fit`` times each encoder form (torch/onnx, fp32/int8, full or
    truncated length) on single examples and keeps the most accurate one, by cross-validation, whose measured
    p99 fits; the choice and the timings go in the fit report. None = use the form given above."""
    encoder: Literal["frozen", "finetuned", "auto"] = "frozen"
    """``frozen``: the embedding model as it is (fits in seconds). ``finetuned``: fine-tune it on the examples
    (SetFit-style contrastive pairs, CPU, minutes) and save it with the router. ``auto``: cross-validate both
    and keep the more accurate (``cadre route fit`` uses ``auto`` unless told otherwise)."""
    finetune_pairs: int = Field(default=2000, ge=16)
    """Fine-tuning budget: at most this many SetFit pairs (and at most 40 per example, SetFit's 20 iterations)."""
    finetune_epochs: int = Field(default=1, ge=1, le=20)
    """Passes over the fine-tuning pairs."""
    finetune_folds: int = Field(default=3, ge=2, le=10)
    """Cross-fitting folds when a fine-tuned encoder is fitted (one fine-tuning per fold, plus the final one)."""
    ood_score: Literal[
        "auto",
        "knn",
        "mahalanobis",
        "energy",
        "knn+energy",
        "knn+mahalanobis",
        "mahalanobis+energy",
        "knn+mahalanobis+energy",
    ] = "auto"
    """The gate's in-domain score when there are no out-of-scope examples: ``knn`` (similarity to a route's
    nearest examples), ``mahalanobis`` (shared-covariance distance to a route mean), ``energy`` (logsumexp of
    the head's logits), a sum of them (``knn+energy`` ..., each standardised by its held-out in-domain mean and
    spread), or ``auto``: the one that best detects a route held out of training as if it were out of scope
    (cross-validated on the examples)."""
    min_in_scope_accuracy: float | None = Field(default=None, gt=0, le=1)
    """Threshold in your words: "keep in-scope accuracy >= X": the gate sends as many requests to the generalist
    as it can while the held-out share of in-scope requests routed to the right specialist stays >= X.
    Replaces ``ood_alpha``."""
    max_generalist_share: float | None = Field(default=None, ge=0, lt=1)
    """Threshold in your words: "send at most Y to the generalist": the most sensitive gate whose held-out
    share of the labelled examples (in-scope and out-of-scope, as mixed in the data) sent to the generalist
    stays <= Y. Replaces ``ood_alpha``."""
    rules: RulesSpec | None = None
    """Only for the ``rules`` strategy: keyword / regex rules per route."""
    seed: int = 0

    @model_validator(mode="after")
    def _one_threshold(self) -> RouterSpec:
        if self.min_in_scope_accuracy is not None and self.max_generalist_share is not None:
            raise ValueError("give at most one of min_in_scope_accuracy and max_generalist_share")
        return self

    @field_validator("candidates")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("candidates must name at least one strategy, e.g. ['centroid', 'knn', 'linear']")
        return v


class RuleSet(StrictModel):
    """Rules for one route: any keyword (whole word, case-insensitive) or regex match selects it."""

    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)


class RulesSpec(StrictModel):
    """A rules router: the first route (in file order) whose rules match wins; no match -> ``default``."""

    routes: dict[str, RuleSet]
    default: str = "generalist"


RouterSpec.model_rebuild()
