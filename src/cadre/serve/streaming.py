"""Server-sent events for streamed chat and text completions (OpenAI's chunk format, ``data: [DONE]`` last), and
the OpenAI shapes of what a generation returns besides text (logprobs, tool calls), streamed or not."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from cadre.runtime.protocol import StreamChunk, TokenLogprob, ToolCall, Usage
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

__all__ = [
    "StreamResult",
    "chat_logprobs",
    "completion_logprobs",
    "finish_reason",
    "sse",
    "sse_events",
    "tool_calls_out",
    "usage_info",
]


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


def _token_entry(t: TokenLogprob) -> dict[str, Any]:
    raw = t.raw if t.raw is not None else t.token.encode()
    return {"token": t.token, "logprob": t.logprob, "bytes": list(raw)}


def chat_logprobs(lps: list[TokenLogprob] | None, n_top: int | None) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` (OpenAI: ``{"content": [{token, logprob, bytes, top_logprobs}]}``), or None
    when none were asked for (``n_top`` None)."""
    if n_top is None:
        return None
    content = [
        {**_token_entry(t), "top_logprobs": [_token_entry(a) for a in t.top[:n_top]]} for t in lps or ()
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(
    lps: list[TokenLogprob] | None, n_top: int | None, offset: int = 0
) -> dict[str, Any] | None:
    """A text completion's legacy ``logprobs`` (``tokens``, ``token_logprobs``, ``top_logprobs`` as
    {token: logprob}, ``text_offset`` counted from ``offset``), or None when none were asked for."""
    if n_top is None:
        return None
    lps = lps or []
    offsets = []
    for t in lps:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in lps],
        "token_logprobs": [t.logprob for t in lps],
        "top_logprobs": [{a.token: a.logprob for a in t.top[:n_top]} for t in lps],
        "text_offset": offsets,
    }


def tool_calls_out(calls: list[ToolCall] | None, *, delta: bool = False) -> list[dict[str, Any]] | None:
    """OpenAI's ``tool_calls``: whole calls for a message, fragments (with ``index``) for a stream's delta."""
    if not calls:
        return None
    out = []
    for c in calls:
        fn: dict[str, Any] = {"arguments": c.arguments}
        item: dict[str, Any] = {"index": c.index} if delta else {}
        if not delta or c.id or c.name:
            item.update(id=c.id or f"call_{c.index}", type=c.type)
            fn["name"] = c.name or ""
        out.append({**item, "function": fn})
    return out


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
    n_top: int | None = None,
    rid: str | None = None,
    pieces: list[StreamChunk] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed job whose first event (``first``) has already arrived.

    Chat streams open with a role chunk that carries ``cadre`` (who answers and why); text completions carry it
    in their last chunk. An engine error after the first token (or the end of a shutdown's drain) ends the
    stream with an OpenAI error event, then ``[DONE]``.
    ``close(finished)`` always runs at the end (cancelling the generation if the client went away).
    ``n_top``: logprobs were asked for, with this many alternatives per token (each chunk carries its token's).
    ``rid``: the response id (default: a new one); ``pieces``: collects the streamed chunks (for capture).
    """
    rid, created = rid or new_id("chatcmpl" if kind == "chat" else "cmpl"), int(time.time())
    usage = Usage()
    finish: str | None = None
    finished = False
    seen_token = False
    offset = 0  # of the next token in the text (legacy logprobs' text_offset)

    def chunk(
        text: str | None,
        *,
        role: bool = False,
        reason: str | None = None,
        cadre: bool = False,
        piece: StreamChunk | None = None,
    ) -> bytes:
        nonlocal offset
        lps = [piece.logprob] if piece is not None and piece.logprob is not None else None
        if kind == "chat":
            delta = DeltaMessage(
                role="assistant" if role else None,
                content=text,
                tool_calls=tool_calls_out(piece.tool_calls, delta=True) if piece is not None else None,
            )
            choice = ChunkChoice(
                delta=delta, finish_reason=reason, logprobs=chat_logprobs(lps, n_top) if lps else None
            )
            return sse(
                ChatCompletionChunk(
                    id=rid, created=created, model=model, choices=[choice], cadre=info if cadre else None
                )
            )
        out = sse(
            CompletionResponse(
                id=rid,
                created=created,
                model=model,
                choices=[
                    CompletionChoice(
                        text=text or "",
                        finish_reason=reason,
                        logprobs=completion_logprobs(lps, n_top, offset) if lps else None,
                    )
                ],
                cadre=info if cadre else None,
            )
        )
        if lps:
            offset += sum(len(t.token) for t in lps)
        return out

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
            if (c.text or c.tool_calls) and not seen_token:
                seen_token = True
                on_first_token()
            if pieces is not None:
                pieces.append(c)
            if c.text or c.tool_calls or (c.logprob is not None and n_top is not None):
                yield chunk(c.text or (None if c.tool_calls else ""), piece=c)
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
