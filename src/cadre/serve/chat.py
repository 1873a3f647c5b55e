"""``POST /v1/chat/completions``: parse, dispatch to the gateway, wrap the answer (JSON or SSE)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from cadre.serve.deps import authorized_gateway
from cadre.serve.pipelines import PIPELINE_PREFIX
from cadre.serve.protocol import ChatCompletionRequest
from cadre.serve.responses import generation_response
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, gw: Gateway = Depends(authorized_gateway)
) -> Response:
    if body.model.startswith(PIPELINE_PREFIX):
        response, headers = await request.app.state.pipelines.chat(body)
        return JSONResponse(response.model_dump(exclude_none=True), headers=headers)
    return await generation_response(body, request, stream=gw.chat_stream, answer=gw.chat)
