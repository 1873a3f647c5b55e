"""The demo's settings: one typed object, with the ``--fast`` and full presets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from cadre.config import StrictModel, parse_spec

__all__ = ["DemoConfig", "TaskSizes"]


class TaskSizes(StrictModel):
    """How many examples each task gets, per split."""

    train: int = Field(600, ge=8)
    validation: int = Field(60, ge=4)
    test: int = Field(60, ge=4)
    out_of_scope_train: int = Field(150, ge=8, description="out-of-scope requests the router is fitted on")
    out_of_scope_test: int = Field(60, ge=4, description="held-out out-of-scope requests for routing metrics")


class DemoConfig(StrictModel):
    """Everything ``cadre demo`` does; ``DemoConfig.preset(fast=...)`` gives the two shipped sizes."""

    out: Path = Field(Path("demo-out"), description="output folder (re-running reuses finished steps)")
    fast: bool = Field(False, description="the ~3-minute version: small splits, short training")
    seed: int = 0
    tasks: list[str] = Field(default_factory=lambda: ["intents", "invoices", "normalize"])
    sizes: TaskSizes = Field(default_factory=lambda: TaskSizes.model_validate({}))
    base: str = Field("smollm2-135m", description="specialist base model (bundled SmolLM2-135M-Instruct)")
    train_budget: str = Field(
        "150s", description="training per specialist: a duration (150s, 3m) or a token count (60k tokens)"
    )
    max_length: int = Field(448, ge=64, description="training tokens per example")
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(8, ge=1)
    pass_tokens: int | None = Field(
        512,
        ge=16,
        description="most tokens a training forward pass computes (larger micro-batches run as several passes "
        "with the same gradients): bounds the training child's memory on the invoices' long examples, while "
        "the short tasks' batches, whose shared prompt is computed once, stay whole (null: no limit)",
    )
    lora_rank: int = Field(16, ge=1)
    generalist: str | None = Field(
        None, description="the local generalist (default: the largest bundled model: gemma3-270m, else base)"
    )
    remote_generalists: list[str] = Field(
        default_factory=list, description="extra generalists to compare, e.g. openai:gpt-4o-mini@https://..."
    )
    remote_api_key_env: str | None = Field(None, description="env var with the remote generalist's API key")
    shots: int = Field(3, ge=0, le=16, description="few-shot exemplars shown to the generalist")
    few_shot_selection: Literal["fixed", "random", "nearest"] = Field(
        "fixed",
        description="how the generalist's exemplars are chosen: the same first k training examples for every "
        "item (the usual few-shot prompt), k random ones, or the k nearest neighbours of each test item (on "
        "templated data the neighbours nearly share the answer, which makes the generalist a kNN classifier)",
    )
    composed_items: int = Field(
        8,
        ge=0,
        description="composed-task items (support message + invoice): pipeline vs generalist (0: skip)",
    )
    perturbations: list[str] = Field(default_factory=lambda: ["numbers", "typos"])
    robustness_items: int = Field(30, ge=1, description="test items per task the robustness battery uses")
    concurrency: int = Field(
        8, ge=1, description="requests in flight per system during evaluation (the runtime batches them)"
    )
    latency_probe: int = Field(
        4, ge=0, description="test items per system answered again one at a time, for the lone-user latency"
    )
    hardware: str = Field("local", description="cost-model hardware for the local systems")
    price_per_hour: float | None = Field(
        None, ge=0, description="USD/hour of this machine (default: the cost model's figure for it)"
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for training and inference")

    @field_validator("train_budget")
    @classmethod
    def _budget(cls, v: str) -> str:
        from cadre.train import parse_budget

        parse_budget(v)  # raises ConfigError naming the accepted forms
        return v.strip()

    @classmethod
    def preset(cls, *, fast: bool, **overrides: object) -> DemoConfig:
        """The full demo (~16 min on 2 cores) or the fast one (~2 min; used by the end-to-end test)."""
        if fast:
            base: dict[str, object] = {
                "fast": True,
                "sizes": TaskSizes(
                    train=160, validation=16, test=8, out_of_scope_train=60, out_of_scope_test=16
                ),
                "train_budget": "4k tokens",  # a few optimizer steps on any machine (a 20s budget can plan 1)
                "shots": 1,
                "perturbations": ["numbers"],
                "robustness_items": 4,
                "latency_probe": 1,
                "composed_items": 1,
            }
        else:
            base = {"fast": False}
        base.update(overrides)
        return parse_spec(cls, base, source="cadre demo")
