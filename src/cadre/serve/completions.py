"""``POST /v1/completions``: plain-text completion (no chat template), JSON or SSE."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from cadre.serve.deps import authorized_gateway
from cadre.serve.protocol import CompletionRequest
from cadre.serve.responses import sse_response
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def create_completion(
    body: CompletionRequest, request: Request, gw: Gateway = Depends(authorized_gateway)
) -> Response:
    if body.stream:
        return sse_response(await gw.complete_stream(body))
    response, headers = await gw.complete(body, is_disconnected=request.is_disconnected)
    return JSONResponse(response.model_dump(exclude_none=True), headers=headers)
