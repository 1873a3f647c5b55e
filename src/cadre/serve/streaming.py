"""Server-sent events for streamed chat and text completions (OpenAI's chunk format, ``data: [DONE]`` last)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from cadre.runtime.protocol import StreamChunk, Usage
from cadre.serve.errors import APIError
from cadre.serve.protocol import (
    CadreInfo,
    ChatCompletionChunk,
    ChunkChoice,
    CompletionChoice,
    CompletionResponse,
    DeltaMessage,
    UsageInfo,
    new_id,
)
from cadre.serve.workers import Job

__all__ = ["StreamResult", "finish_reason", "sse", "sse_events", "usage_info"]


@dataclass
class StreamResult:
    """A streamed answer: the SSE body, the response headers, and ``close`` (idempotent: cancels the generation
    and frees the queue slot; the route also runs it after the response, in case the body never started)."""

    body: AsyncIterator[bytes]
    headers: dict[str, str]
    close: Callable[[], None]


def usage_info(u: Usage) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens
    )


def finish_reason(reason: str | None) -> str | None:
    """OpenAI has no "error" finish reason; an engine error mid-answer is reported as a stop."""
    return "stop" if reason == "error" else reason


def sse(obj: Any) -> bytes:
    payload = obj.model_dump_json(exclude_none=True) if hasattr(obj, "model_dump_json") else json.dumps(obj)
    return f"data: {payload}\n\n".encode()


async def sse_events(
    kind: Literal["chat", "complete"],
    job: Job,
    first: tuple[str, Any],
    *,
    model: str,
    info: CadreInfo,
    include_usage: bool,
    on_first_token: Callable[[], None],
    on_done: Callable[[Usage], None],
    close: Callable[[bool], None],
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed job whose first event (``first``) has already arrived.

    Chat streams open with a role chunk that carries ``cadre`` (who answers and why); text completions carry it
    in their last chunk. An engine error after the first token (or the end of a shutdown's drain) ends the
    stream with an OpenAI error event, then ``[DONE]``.
    ``close(finished)`` always runs at the end (cancelling the generation if the client went away).
    """
    rid, created = new_id("chatcmpl" if kind == "chat" else "cmpl"), int(time.time())
    usage = Usage()
    finish: str | None = None
    finished = False
    seen_token = False

    def chunk(
        text: str | None, *, role: bool = False, reason: str | None = None, cadre: bool = False
    ) -> bytes:
        if kind == "chat":
            delta = DeltaMessage(role="assistant" if role else None, content=text)
            choice = ChunkChoice(delta=delta, finish_reason=reason)
            return sse(
                ChatCompletionChunk(
                    id=rid, created=created, model=model, choices=[choice], cadre=info if cadre else None
                )
            )
        return sse(
            CompletionResponse(
                id=rid,
                created=created,
                model=model,
                choices=[CompletionChoice(text=text or "", finish_reason=reason)],
                cadre=info if cadre else None,
            )
        )

    try:
        if kind == "chat":
            yield chunk("", role=True, cadre=True)
        event = first
        while True:
            ev_kind, payload = event
            if ev_kind == "end":
                break
            if ev_kind == "error":
                err = APIError.from_exception(payload)
                yield sse(
                    {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code}}
                )
                yield b"data: [DONE]\n\n"
                finished = True
                return
            c: StreamChunk = payload
            if c.text:
                if not seen_token:
                    seen_token = True
                    on_first_token()
                yield chunk(c.text)
            if c.finish_reason is not None:
                finish = finish_reason(c.finish_reason)
            if c.usage is not None:
                usage = c.usage
            event = await job.events.get()
        yield chunk(None if kind == "chat" else "", reason=finish or "stop", cadre=kind == "complete")
        if include_usage:
            if kind == "chat":
                yield sse(
                    ChatCompletionChunk(
                        id=rid, created=created, model=model, choices=[], usage=usage_info(usage), cadre=info
                    )
                )
            else:
                yield sse(
                    CompletionResponse(
                        id=rid, created=created, model=model, choices=[], usage=usage_info(usage)
                    )
                )
        yield b"data: [DONE]\n\n"
        finished = True
        on_done(usage)
    finally:
        close(finished)
