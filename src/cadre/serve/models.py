"""``GET /v1/models`` (every specialist, the generalist, ``auto``, the embedding model) and one model by id."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cadre.errors import did_you_mean
from cadre.serve.deps import authorized_gateway
from cadre.serve.pipelines import pipeline_cards
from cadre.serve.protocol import ModelCard, ModelList
from cadre.serve.serving import Gateway

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models")
async def list_models(gw: Gateway = Depends(authorized_gateway)) -> ModelList:
    return _with_pipelines(gw)


def _with_pipelines(gw: Gateway) -> ModelList:
    return ModelList(data=[*gw.models().data, *pipeline_cards(gw.spec)])


@router.get("/v1/models/{model_id}")
async def retrieve_model(model_id: str, gw: Gateway = Depends(authorized_gateway)) -> ModelCard:
    cards = _with_pipelines(gw).data
    for card in cards:
        if card.id == model_id:
            return card
    raise did_you_mean(model_id, [c.id for c in cards], kind="model")
