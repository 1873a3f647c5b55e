"""Pipelines behind the endpoint: ``model="pipeline:<name>"`` on chat completions and ``POST /v1/pipelines/<name>:run``.

The executor (:class:`cadre.ecosystem.PipelineRunner`) runs in a thread; each step's model call comes back into the
event loop and goes to the same workers as any request (so steps batch with other traffic), on the current
snapshot. A pipeline request takes one queue slot; its steps do not take more. A step's model does not fall back
to the generalist on its own: a pipeline says per step what a failure does (``on_failure``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cadre.ecosystem import EcosystemSpec, ModelReply, ModelRequest, PipelineResult, PipelineRunner, constrain
from cadre.errors import PipelineError, did_you_mean
from cadre.serve.errors import APIError
from cadre.serve.protocol import (
    AssistantMessage,
    CadreInfo,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ModelCard,
    UsageInfo,
)
from cadre.serve.routing import choose_target
from cadre.serve.workers import Job

if TYPE_CHECKING:
    from cadre.serve.serving import Gateway

__all__ = ["PIPELINE_PREFIX", "ServedPipelines", "pipeline_cards"]

PIPELINE_PREFIX = "pipeline:"


def pipeline_cards(spec: EcosystemSpec) -> list[ModelCard]:
    """``/v1/models`` entries for the ecosystem's pipelines (``pipeline:<name>``)."""
    return [
        ModelCard(
            id=f"{PIPELINE_PREFIX}{name}", kind="pipeline", description=p.description or f"pipeline {name}"
        )
        for name, p in spec.pipelines.items()
    ]


class _GatewayModels:
    """The :class:`~cadre.ecosystem.ModelCaller` of served pipelines: each call goes to the gateway's workers."""

    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self.gateway = gateway
        self.loop = loop

    def call(self, request: ModelRequest) -> ModelReply:
        return asyncio.run_coroutine_threadsafe(self._call(request), self.loop).result()

    async def _call(self, request: ModelRequest) -> ModelReply:
        gw = self.gateway
        decision = await choose_target(gw.snapshot, request.model, request.messages, metrics=gw.metrics)
        target = decision.target
        worker = gw.served.worker(target)
        params = constrain(worker.backend, request)
        if not params.stop and target.decoding.stop:
            params = replace(params, stop=tuple(target.decoding.stop))
        messages, citations = await gw._prepare_chat(target, request.messages)
        completions = []
        for i in range(request.n):
            job_params = params if i == 0 else replace(params, seed=(params.seed or 0) + i)
            job = Job(kind="chat", params=job_params, adapter=target.adapter, messages=messages, stream=False)
            await worker.submit(job)
            completions.append(job)
        results = [await gw._await_result(job, gw._timeout(target), None) for job in completions]
        for c in results:
            gw.metrics.tokens.labels(target.name, "prompt").inc(c.usage.prompt_tokens)
            gw.metrics.tokens.labels(target.name, "completion").inc(c.usage.completion_tokens)
        return ModelReply(results, target.name, target.adapter, extra={"citations": citations})


class ServedPipelines:
    """The pipelines of the gateway's current ecosystem (rebuilt when it is reloaded)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._runner: PipelineRunner | None = None
        self._spec: EcosystemSpec | None = None

    def _current(self) -> PipelineRunner:
        spec = self.gateway.spec
        if self._runner is None or self._spec is not spec:
            old = self._runner
            self._runner = PipelineRunner(
                spec.pipelines, _GatewayModels(self.gateway, asyncio.get_running_loop())
            )
            self._spec = spec
            if old is not None:
                old.close()
        return self._runner

    async def run(self, name: str, data: Any) -> PipelineResult:
        """Run pipeline ``name`` on ``data`` in a thread, holding one queue slot; count each step."""
        runner = self._current()
        if name not in runner.pipelines:
            raise did_you_mean(name, [f"{PIPELINE_PREFIX}{n}" for n in runner.pipelines], kind="pipeline")
        gw = self.gateway
        started = gw._admit()
        try:
            result = await asyncio.to_thread(runner.run, name, data)
        except PipelineError as err:
            self._count(name, getattr(err, "steps", []))
            raise
        finally:
            gw.admission.release(started)
        self._count(name, result.steps)
        return result

    def _count(self, name: str, steps: list[Any]) -> None:
        m = self.gateway.metrics
        for s in steps:
            m.pipeline_steps.labels(name, s.id, s.status).inc()
            if s.status != "skipped":
                m.pipeline_step_seconds.labels(name, s.id).observe(s.latency_s)
            if s.escalations:
                m.pipeline_escalations.labels(name, s.id).inc(len(s.escalations))

    async def chat(self, req: ChatCompletionRequest) -> tuple[ChatCompletionResponse, dict[str, str]]:
        """``model="pipeline:<name>"``: the last user message is the input (JSON for a structured input)."""
        if req.stream:
            raise APIError(400, "pipelines answer in one piece; send stream: false", param="stream")
        name = req.model.removeprefix(PIPELINE_PREFIX)
        messages = self.gateway._chat_input(req)
        users = [m for m in messages if m["role"] == "user"]
        if not users:
            raise APIError(400, "a pipeline needs a user message (its input)", param="messages")
        text = users[-1]["content"]
        spec = self.gateway.spec.pipelines.get(name)
        data: Any = text
        if spec is not None and not (len(spec.input) == 1 and "string" in spec.input.values()):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise APIError(
                    400,
                    f"pipeline {name!r} takes a JSON object ({', '.join(spec.input)}) as the user message",
                    param="messages",
                ) from None
        t0 = time.perf_counter()
        result = await self.run(name, data)
        content = (
            json.dumps(result.output, ensure_ascii=False) if result.structured else str(result.output or "")
        )
        info = CadreInfo(
            route=req.model,
            reason=f"pipeline of {len(result.steps)} steps in {time.perf_counter() - t0:.3f}s",
            requested=req.model,
            citations=result.citations,
            steps=[s.to_dict() for s in result.steps],
            run_id=result.run_id,
        )
        usage = UsageInfo(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )
        response = ChatCompletionResponse(
            model=req.model,
            choices=[ChatChoice(message=AssistantMessage(content=content), finish_reason="stop")],
            usage=usage,
            cadre=info,
        )
        return response, {"x-cadre-route": req.model, "x-cadre-pipeline-run": result.run_id}
