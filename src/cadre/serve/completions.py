"""``POST /v1/completions``: plain-text completion (no chat template), JSON or SSE."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cadre.serve.deps import authorized_gateway
from cadre.serve.protocol import CompletionRequest
from cadre.serve.responses import generation_response
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def create_completion(
    body: CompletionRequest, request: Request, gw: Gateway = Depends(authorized_gateway)
) -> Response:
    return await generation_response(body, request, stream=gw.complete_stream, answer=gw.complete)
