"""The one interface every model backend implements (llama.cpp, transformers, OpenAI-compatible HTTP).

Everything above the runtime (training checks, evaluation, routing, serving, the demo) talks to models only
through :class:`Backend`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypedDict, runtime_checkable

__all__ = [
    "Backend",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "FinishReason",
    "SamplingParams",
    "StreamChunk",
    "TokenLogprob",
    "Usage",
]

FinishReason = Literal["stop", "length", "error"]


class ChatMessage(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """Decoding settings of one request (OpenAI names and meanings)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    truncate: bool = False  # drop the oldest prompt tokens when the prompt does not fit (else an error)
    grammar: str | None = None  # GBNF text the output must match (llama.cpp backend; others ignore it)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float


@dataclass
class Completion:
    """The result of one generation, with the timings the router, eval and server need."""

    text: str
    usage: Usage
    finish_reason: FinishReason = "stop"
    model: str = ""
    adapter: str | None = None
    logprobs: list[TokenLogprob] | None = None
    seconds_to_first_token: float = 0.0
    seconds_total: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        """Decode speed: completion tokens after the first over the time after the first token."""
        decode_s = self.seconds_total - self.seconds_to_first_token
        if self.usage.completion_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.usage.completion_tokens - 1) / decode_s

    @property
    def mean_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return sum(t.logprob for t in self.logprobs) / len(self.logprobs)


@dataclass
class StreamChunk:
    """One piece of a streamed generation; the last chunk has ``finish_reason`` and ``usage`` set."""

    text: str
    logprob: TokenLogprob | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(kw_only=True)
class ChatRequest:
    """A chat request for batch submission."""

    messages: list[ChatMessage]
    params: SamplingParams = field(default_factory=SamplingParams)
    adapter: str | None = None


@runtime_checkable
class Backend(Protocol):
    """A loaded model (and, for llama.cpp, the LoRA adapters over it) that generates text."""

    name: str

    def chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion: ...

    def complete(self, prompt: str, params: SamplingParams, *, adapter: str | None = None) -> Completion: ...

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]: ...

    def stream_complete(
        self, prompt: str, params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]: ...

    def batch_chat(self, requests: Sequence[ChatRequest]) -> list[Completion]: ...

    def count_tokens(self, text: str) -> int: ...

    def adapters(self) -> list[str]: ...

    def close(self) -> None: ...

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Add (or replace) LoRA adapter ``name`` from ``path`` while the backend serves (hot reload)."""
        ...


def collect_stream(
    chunks: Iterator[StreamChunk], *, model: str = "", adapter: str | None = None
) -> Completion:
    """Drain a stream into a Completion, timing the first token (used to implement non-streaming calls)."""
    t0 = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    logprobs: list[TokenLogprob] = []
    usage = Usage()
    finish: FinishReason = "stop"
    for chunk in chunks:
        if first is None and chunk.text:
            first = time.perf_counter() - t0
        parts.append(chunk.text)
        if chunk.logprob is not None:
            logprobs.append(chunk.logprob)
        if chunk.finish_reason is not None:
            finish = chunk.finish_reason
        if chunk.usage is not None:
            usage = chunk.usage
    total = time.perf_counter() - t0
    return Completion(
        text="".join(parts),
        usage=usage,
        finish_reason=finish,
        model=model,
        adapter=adapter,
        logprobs=logprobs or None,
        seconds_to_first_token=first if first is not None else total,
        seconds_total=total,
    )
