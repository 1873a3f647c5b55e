"""How long a run is: the step plan for epoch, token, time and step limits, re-planned while training.

- An **epoch** budget is a number of optimizer steps (``ceil(epochs × steps per epoch)``).
- A **token** budget is exact: the plan walks the run's own batch order (the same ``(seed, epoch)`` order the
  loop uses) and counts the steps until the non-padding tokens seen reach the budget.
- A **time** budget counts optimizer time only (forward, backward, step); loading the model, evaluations and
  checkpoints are timed apart and reported. The first plan assumes a nominal throughput; from the first step
  on, the plan is redone after every step from the measured seconds per token and the time left — over the
  recent steps once the first ones, which pay one-off allocation and kernel-selection costs, are past — so
  the learning-rate schedule ends where the budget ends.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from cadre.train import data as D
from cadre.train.config import TrainConfig

__all__ = ["DEFAULT_EPOCHS", "StepPlanner", "steps_for_tokens"]

DEFAULT_EPOCHS = 3.0
WARMUP_STEPS = 2  # steps of each process not used to measure throughput
WINDOW = 32  # recent steps the throughput estimate is taken over
NOMINAL_TOKENS_PER_SECOND = 200.0  # the first plan's guess (SmolLM2-135M, 2 Zen 4 cores: docs/train.md)


def steps_for_tokens(lengths: Sequence[int], config: TrainConfig, tokens: int) -> int:
    """Optimizer steps until the non-padding tokens seen reach ``tokens`` (the loop's exact batch order)."""
    seen, step, epoch = 0, 0, 0
    if sum(lengths) <= 0:
        return 1
    while True:
        batches = D.epoch_batches(lengths, config.micro_batch, config.seed, epoch)
        for start in range(0, len(batches), config.accumulation):
            seen += sum(lengths[i] for mb in batches[start : start + config.accumulation] for i in mb)
            step += 1
            if seen >= tokens:
                return step
        epoch += 1


@dataclass
class StepPlanner:
    """The run's total step count: fixed for epoch/token/step limits, re-planned for a time budget."""

    config: TrainConfig
    lengths: list[int]
    fixed_limit: int | None = None  # the smallest of the epoch, token and step limits (None: time only)
    seconds: float | None = None  # the time budget
    _recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _seen_here: int = 0
    _first: tuple[float, int] = (0.0, 0)  # the warm-up steps, used until a steady one is measured

    @classmethod
    def for_run(cls, config: TrainConfig, lengths: list[int]) -> StepPlanner:
        per_epoch = D.steps_per_epoch(len(lengths), config.micro_batch, config.accumulation)
        budget = config.parsed_budget
        limits = []
        if config.epochs is not None or (budget is None and config.max_steps is None):
            limits.append(math.ceil((config.epochs or DEFAULT_EPOCHS) * per_epoch))
        if budget is not None and budget.tokens is not None:
            limits.append(steps_for_tokens(lengths, config, budget.tokens))
        if config.max_steps is not None:
            limits.append(config.max_steps)
        seconds = budget.seconds if budget is not None else None
        return cls(config, lengths, min(limits) if limits else None, seconds)

    @property
    def tokens_per_step(self) -> float:
        per_epoch = D.steps_per_epoch(len(self.lengths), self.config.micro_batch, self.config.accumulation)
        return sum(self.lengths) / per_epoch

    def initial(self, seconds_per_token: float | None = None) -> int:
        """The first plan; a time budget assumes ``seconds_per_token`` (default: a nominal throughput)."""
        limits = [self.fixed_limit] if self.fixed_limit is not None else []
        if self.seconds is not None:
            per_token = seconds_per_token or 1.0 / NOMINAL_TOKENS_PER_SECOND
            limits.append(int(self.seconds / (per_token * self.tokens_per_step)))
        return max(1, min(limits)) if limits else 1

    def observe(self, seconds: float, tokens: int) -> None:
        """Record one optimizer step run by this process."""
        self._seen_here += 1
        if self._seen_here > WARMUP_STEPS:
            self._recent.append((seconds, tokens))
        else:
            self._first = (self._first[0] + seconds, self._first[1] + tokens)

    @property
    def seconds_per_token(self) -> float | None:
        """Measured over the last steps after warm-up (until then over the warm-up steps); None before any."""
        if not self._recent:
            return self._first[0] / self._first[1] if self._first[1] else None
        return sum(s for s, _ in self._recent) / max(1, sum(t for _, t in self._recent))

    def replan(self, step: int, total: int, train_seconds: float) -> int:
        """The total for a run at ``step`` after ``train_seconds`` of optimizer time (``total`` if unchanged)."""
        if self.seconds is None or self.seconds_per_token is None:
            return total
        left = max(0.0, self.seconds - train_seconds)
        planned = step + round(left / (self.seconds_per_token * self.tokens_per_step))
        if self.fixed_limit is not None:
            planned = min(planned, self.fixed_limit)
        return max(step, planned, 1)

    def out_of_time(self, train_seconds: float) -> bool:
        """A time budget is spent (the plan is a guide; this is the guarantee, 2% past the budget)."""
        return self.seconds is not None and train_seconds >= 1.02 * self.seconds
