"""HTTP responses shared by the generation routes."""

from __future__ import annotations

from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from cadre.serve.streaming import StreamResult

__all__ = ["sse_response"]


def sse_response(stream: StreamResult) -> StreamingResponse:
    """The SSE response for a streamed answer; ``stream.close`` also runs after it, in case the body never started."""
    return StreamingResponse(
        stream.body,
        media_type="text/event-stream",
        headers=stream.headers,
        background=BackgroundTask(stream.close),
    )
