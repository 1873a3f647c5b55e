"""HTTP responses shared by the generation routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from cadre.serve.streaming import StreamResult

__all__ = ["generation_response", "sse_response"]

R = TypeVar("R")


def sse_response(stream: StreamResult) -> StreamingResponse:
    """The SSE response for a streamed answer; ``stream.close`` also runs after it, in case the body never started."""
    return StreamingResponse(
        stream.body,
        media_type="text/event-stream",
        headers=stream.headers,
        background=BackgroundTask(stream.close),
    )


async def generation_response(
    body: R,
    request: Request,
    *,
    stream: Callable[[R], Awaitable[StreamResult]],
    answer: Callable[..., Awaitable[tuple[BaseModel, dict[str, str]]]],
) -> Response:
    """SSE when the request asks to stream, else one JSON answer (generation stops if the client leaves)."""
    if getattr(body, "stream", False):
        return sse_response(await stream(body))
    response, headers = await answer(body, is_disconnected=request.is_disconnected)
    return JSONResponse(response.model_dump(exclude_none=True), headers=headers)
