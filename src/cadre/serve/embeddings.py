"""``POST /v1/embeddings`` with the bundled all-MiniLM-L6-v2 (float or base64, as the openai client asks)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cadre.serve.deps import authorized_gateway
from cadre.serve.protocol import EmbeddingRequest, EmbeddingResponse
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/embeddings")
async def create_embeddings(
    body: EmbeddingRequest, gw: Gateway = Depends(authorized_gateway)
) -> EmbeddingResponse:
    return await gw.embed(body)
