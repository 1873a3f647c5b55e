"""What the backends share around generation: the prompt fitted to the context, a chat template's stop strings,
and the non-streamed calls, drained from the streamed ones.

Plain functions over the :class:`~cadre.runtime.protocol.Backend` methods (composition, no base class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cadre.errors import ContextLengthError, NotFoundError
from cadre.runtime.protocol import Backend, ChatMessage, Completion, SamplingParams, collect_stream
from cadre.runtime.templates import ChatTemplate

__all__ = [
    "chat_from_stream",
    "complete_from_stream",
    "fit_prompt",
    "unknown_adapter",
    "with_template_stops",
]


def fit_prompt(tokens: list[int], params: SamplingParams, n_ctx: int) -> list[int]:
    """``tokens`` if they leave room in ``n_ctx``; with ``params.truncate``, their newest part that does.

    Raises:
        ContextLengthError: the prompt does not fit and truncation was not asked for.
    """
    if len(tokens) < n_ctx:
        return tokens
    if not params.truncate:
        raise ContextLengthError(
            f"the prompt has {len(tokens)} tokens but the context holds {n_ctx}; shorten it, load the "
            "model with a larger n_ctx, or pass truncate=True to drop the oldest tokens"
        )
    keep = n_ctx - min(params.max_tokens, n_ctx // 2)
    return tokens[len(tokens) - keep :]


def with_template_stops(params: SamplingParams, template: ChatTemplate) -> SamplingParams:
    """``params`` whose stop strings also hold the template's own (a base model's transcript stop)."""
    stops = tuple(dict.fromkeys((*params.stop, *template.extra_stops)))
    return params if stops == params.stop else replace(params, stop=stops)


def unknown_adapter(adapter: str, model: str, loaded: Sequence[str]) -> NotFoundError:
    """The error for a request naming an adapter that is not loaded."""
    return NotFoundError(
        f"adapter {adapter!r} is not loaded on {model}; loaded: {', '.join(loaded) or 'none'}"
    )


def chat_from_stream(
    backend: Backend, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None
) -> Completion:
    """``backend.chat``: its chat stream, collected."""
    stream = backend.stream_chat(messages, params, adapter=adapter)
    return collect_stream(stream, model=backend.name, adapter=adapter)


def complete_from_stream(
    backend: Backend, prompt: str, params: SamplingParams, adapter: str | None
) -> Completion:
    """``backend.complete``: its completion stream, collected."""
    stream = backend.stream_complete(prompt, params, adapter=adapter)
    return collect_stream(stream, model=backend.name, adapter=adapter)
