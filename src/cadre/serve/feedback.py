"""``POST /v1/feedback``: a user's label or score for an answer, by the response id the client got.

Body: ``{"response_id": "chatcmpl-...", "label": "the right answer", "score": 1}`` (``label`` and/or ``score``;
score in [0, 1], e.g. thumbs up 1 and down 0). It needs the inference key, like the request it rates. The item
goes through the capture recorder (its label redacted like every record) into the capture store's ``feedback``
table, where ``cadre traffic compare`` and ``cadre traffic shadow`` read labels as references for accuracy.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cadre.serve.deps import authorized_gateway
from cadre.serve.errors import APIError
from cadre.serve.serving import Gateway
from cadre.traffic import Feedback

__all__ = ["FeedbackRequest", "router"]

router = APIRouter()


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=128, description="the id of the response rated")
    label: str | None = Field(default=None, max_length=20_000, description="the right answer")
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="how good the answer was, 0 to 1")

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.label is None and self.score is None:
            raise ValueError("send a label, a score, or both")
        return self


@router.post("/v1/feedback", status_code=202)
async def create_feedback(body: FeedbackRequest, gw: Gateway = Depends(authorized_gateway)) -> JSONResponse:
    recorder = gw.capture.recorder
    if recorder is None or not recorder.spec.enabled:
        gw.metrics.feedback.labels("refused").inc()
        raise APIError(
            409,
            "feedback is kept in the capture store and capture is off; add a capture: block to the ecosystem",
            code="capture_off",
        )
    item = Feedback(request_id=body.response_id, label=body.label, score=body.score, source="api")
    if not recorder.offer(item):
        gw.metrics.feedback.labels("dropped").inc()
        raise APIError(
            503, "the capture writer is busy; retry later", code="busy", headers={"Retry-After": "1"}
        )
    gw.metrics.feedback.labels("queued").inc()
    out: dict[str, Any] = {"object": "feedback", "response_id": body.response_id, "status": "queued"}
    return JSONResponse(out, status_code=202)
