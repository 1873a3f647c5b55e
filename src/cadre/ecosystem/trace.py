"""One step's record in a pipeline run: who answered, how long, how many tokens, what it cost, what escalated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cadre.ecosystem.models import ModelReply

__all__ = ["StepTrace"]


@dataclass
class StepTrace:
    """What one step did: who answered, how long, how many tokens, what it cost, what was escalated."""

    id: str
    kind: str
    status: str = "ok"  # ok | skipped | failed
    model: str | None = None
    adapter: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    attempts: int = 0
    escalations: list[str] = field(default_factory=list)
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def add_reply(self, reply: ModelReply) -> None:
        self.attempts += 1
        self.model, self.adapter = reply.model, reply.adapter
        for c in reply.completions:
            self.prompt_tokens += c.usage.prompt_tokens
            self.completion_tokens += c.usage.completion_tokens
        if reply.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + reply.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
