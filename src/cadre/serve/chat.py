"""``POST /v1/chat/completions``: parse, dispatch to the gateway, wrap the answer (JSON or SSE)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from cadre.serve.deps import authorized_gateway
from cadre.serve.protocol import ChatCompletionRequest
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, gw: Gateway = Depends(authorized_gateway)
) -> Response:
    if body.stream:
        stream = await gw.chat_stream(body)
        return StreamingResponse(
            stream.body,
            media_type="text/event-stream",
            headers=stream.headers,
            background=BackgroundTask(stream.close),
        )
    response, headers = await gw.chat(body, is_disconnected=request.is_disconnected)
    return JSONResponse(response.model_dump(exclude_none=True), headers=headers)
