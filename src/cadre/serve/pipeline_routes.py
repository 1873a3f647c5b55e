"""``POST /v1/pipelines/{name}:run``: run a pipeline on a JSON input; the answer, citations and the trace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from cadre.serve.deps import authorized_gateway
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


class PipelineRunRequest(BaseModel):
    """The body: ``{"input": {...}}`` (a string for a pipeline whose input is one text field)."""

    model_config = ConfigDict(extra="forbid")
    input: Any


@router.post("/v1/pipelines/{name}:run")
async def run_pipeline(
    name: str, body: PipelineRunRequest, request: Request, gw: Gateway = Depends(authorized_gateway)
) -> dict[str, Any]:
    result = await request.app.state.pipelines.run(name, body.input)
    return result.to_dict(trace=True)  # type: ignore[no-any-return]
