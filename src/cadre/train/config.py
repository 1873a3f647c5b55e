"""The training spec: one typed object that is the YAML file, the ``cadre train`` flags and the defaults.

A user normally sets only ``base``, ``data`` and ``out``; every other field has a default chosen for
SmolLM2-135M on a small CPU (see ``docs/train.md`` for the measurements behind them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cadre.config.base import StrictModel
from cadre.errors import ConfigError

__all__ = ["Budget", "LoraSettings", "TrainConfig", "parse_budget"]

# All seven linear projections of a llama-style block (the notes measured r=16 on these: 3.5% trainable).
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

_TIME = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)
_TOKENS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*(?:tok|tokens)\s*$")


class Budget(StrictModel):
    """How much training to do: wall-clock seconds or a number of tokens (exactly one is set)."""

    seconds: float | None = None
    tokens: int | None = None


def parse_budget(text: str) -> Budget:
    """Parse ``10m``, ``90s``, ``1h30m`` (time) or ``200k tokens``, ``1.5M tok`` (tokens).

    Raises:
        ConfigError: the text is neither form.
    """
    m = _TOKENS.match(text)
    if m:
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
        tokens = int(float(m.group(1)) * scale)
        if tokens <= 0:
            raise ConfigError(f"budget {text!r}: the token count must be positive")
        return Budget(tokens=tokens)
    m = _TIME.match(text)
    if m and any(m.groups()):
        h, mins, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mins * 60 + s
        if seconds <= 0:
            raise ConfigError(f"budget {text!r}: the duration must be positive")
        return Budget(seconds=seconds)
    raise ConfigError(
        f"budget {text!r} not understood: use a duration (90s, 10m, 1h30m) or a token count (200k tokens)"
    )


class LoraSettings(StrictModel):
    """The LoRA adapter's shape (Hu et al. 2021); PEFT scales the update by ``alpha / rank``."""

    rank: int = Field(16, ge=1, le=1024, description="LoRA rank r")
    alpha: int = Field(32, gt=0, description="LoRA alpha; the update is scaled by alpha / rank")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input during training")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TARGETS), description="names of the linear layers to adapt"
    )


class TrainConfig(StrictModel):
    """Everything ``cadre train`` needs. The YAML file and the flags set the same fields."""

    # --- what to train on
    base: str = Field(
        "smollm2-135m", description="bundled model name, a .gguf file, or a transformers model dir"
    )
    data: Path = Field(..., description="training data: .jsonl, .csv, or a `datasets` directory")
    eval_data: Path | None = Field(None, description="held-out data (default: split off `eval_fraction`)")
    out: Path = Field(..., description="output directory (adapter, config, metrics, model card, checkpoints)")
    eval_fraction: float = Field(0.1, ge=0, lt=0.9, description="share of `data` held out when no eval_data")

    # --- turning rows into chat examples
    system: str | None = Field(None, description="system prompt added to every example that has none")
    template: str | None = Field(
        None, description="user-message template over row fields, e.g. 'Classify: {text}' (label/field data)"
    )
    target: str | None = Field(
        None, description="the row field that is the assistant's answer (with template)"
    )
    prompt_column: str = Field("prompt", description="CSV/dataset column holding the prompt")
    completion_column: str = Field("completion", description="CSV/dataset column holding the answer")
    max_length: int = Field(512, ge=16, description="tokens per example; longer ones are truncated (counted)")
    share_prefix: bool = Field(
        True,
        description="run the prompt prefix every example of a micro-batch shares (template opening, a constant "
        "system prompt) once per micro-batch: same loss and gradients, less compute; the prompt is unchanged",
    )
    constant_system: Literal["keep", "drop", "replace"] = Field(
        "keep",
        description="a system prompt every training example shares (a label list, say): keep it (the specialist "
        "then answers the data file's messages as they are, plain llama.cpp included), drop it, or replace it "
        "with `replacement_system` (fewer tokens per example); the prompt trained with is recorded in the "
        "adapter and `cadre serve`/`eval`/`generate` apply it",
    )
    replacement_system: str | None = Field(
        None, description="with constant_system: replace, the (shorter) system prompt to train with instead"
    )
    too_long: Literal["truncate", "drop", "error"] = Field(
        "truncate", description="what to do with examples longer than max_length"
    )

    # --- adapter and optimisation
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings.model_validate({}))
    learning_rate: float = Field(
        1e-3, gt=0, description="peak learning rate (1e-3: measured on HWU64 and PubMedQA, docs/train.md)"
    )
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="learning-rate decay after warmup"
    )
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of the steps spent warming up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip gradients to this norm (null: no clipping)"
    )
    batch_size: int = Field(8, ge=1, description="examples per optimizer step (micro_batch × accumulation)")
    micro_batch_size: int | None = Field(None, ge=1, description="examples per forward pass (default: batch)")
    pass_tokens: int | None = Field(
        None,
        ge=16,
        description="most tokens one forward pass computes (the shared prompt prefix once, then rows x the "
        "longest row's rest): a larger micro-batch runs as several passes, with the same gradients and less "
        "activation memory (default: no limit)",
    )

    # --- how long
    epochs: float | None = Field(None, gt=0, description="passes over the data (default 3 without a budget)")
    budget: str | None = Field(None, description="stop after a time (10m) or token (200k tokens) budget")
    max_steps: int | None = Field(None, ge=1, description="hard cap on optimizer steps")

    # --- evaluation, early stopping, checkpoints
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations (default: ~8 per run)")
    metric: Literal["exact_match", "json_match"] | None = Field(
        None, description="task metric computed by greedy generation on the held-out split"
    )
    metric_examples: int = Field(64, ge=1, description="held-out examples generated for the task metric")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="evaluations without improvement before stopping and keeping the best evaluated adapter "
        "(default: never stop early; the run's last adapter is kept)",
    )
    save_every: int = Field(50, ge=1, description="steps between resumable checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="resumable checkpoints kept on disk")

    # --- hardware and reproducibility
    seed: int = Field(0, description="random seed")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to train")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA or on CPUs with AVX512_BF16/AMX, else fp32"
    )
    qlora: bool = Field(False, description="load the base in 4-bit NF4 (bitsandbytes; CUDA only)")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: torch's choice)")

    @field_validator("budget")
    @classmethod
    def _check_budget(cls, v: str | None) -> str | None:
        if v is not None:
            parse_budget(v)
        return v

    @model_validator(mode="after")
    def _check_fields(self) -> TrainConfig:
        if self.template is not None and self.target is None:
            raise ValueError("`template` needs `target` (the row field that is the answer)")
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError("`batch_size` must be a multiple of `micro_batch_size`")
        if (self.constant_system == "replace") != bool(self.replacement_system):
            raise ValueError(
                "`constant_system: replace` and `replacement_system` go together: give both "
                "(--constant-system replace --replacement-system '...') or neither"
            )
        if self.qlora and self.device == "cpu":
            raise ValueError("`qlora` needs CUDA (bitsandbytes NF4); drop --qlora to train on the CPU")
        return self

    @property
    def parsed_budget(self) -> Budget | None:
        return parse_budget(self.budget) if self.budget else None

    @property
    def micro_batch(self) -> int:
        return self.micro_batch_size or self.batch_size

    @property
    def accumulation(self) -> int:
        return self.batch_size // self.micro_batch
