"""The gateway: what the HTTP routes call. It serves requests; :class:`ServedModels` holds what it serves.

Routes (``chat.py``, ``completions.py``, ...) only parse and dispatch to a :class:`Gateway`. The gateway checks
limits and admits the request, asks :func:`~cadre.serve.routing.choose_target` who answers, grounds the chat,
runs the generation on the target's worker (falling back to the generalist when a specialist fails or times out),
streams it, and counts it. Loading, listing and hot reload are :class:`~cadre.serve.served_models.ServedModels`'.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from cadre.ecosystem.spec import AUTO_MODEL, EcosystemSpec, KnowledgeRef
from cadre.errors import (
    CadreError,
    ConfigError,
    ContextLengthError,
    NotFoundError,
    RequestRejectedError,
    did_you_mean,
)
from cadre.route import GENERALIST
from cadre.runtime.grammars import json_grammar
from cadre.runtime.protocol import (
    ChatMessage,
    Completion,
    SamplingParams,
    StreamChunk,
    Usage,
    collect_stream,
)
from cadre.serve.capture import Capture
from cadre.serve.errors import APIError, ClientGone
from cadre.serve.protocol import (
    AssistantMessage,
    CadreInfo,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
    UsageInfo,
    new_id,
)
from cadre.serve.routing import Decision, choose_target, merge_system
from cadre.serve.served_models import BackendLoader, RouterFactory, ServedModels, Snapshot, Target
from cadre.serve.shadow import Agreement, ShadowRunner
from cadre.serve.streaming import (
    StreamResult,
    chat_logprobs,
    completion_logprobs,
    finish_reason,
    sse_events,
    tool_calls_out,
    usage_info,
)
from cadre.serve.telemetry import Metrics
from cadre.serve.wiring import EMBEDDING_ALIASES, EMBEDDING_MODEL, CorpusGrounder, build_router, embed_texts
from cadre.serve.workers import Admission, Job

__all__ = ["Gateway", "Grounder"]

log = logging.getLogger("cadre.serve")

Grounder = Callable[[KnowledgeRef, Sequence[ChatMessage]], tuple[list[ChatMessage], list[dict[str, Any]]]]
"""``(KnowledgeRef, messages) -> (messages with passages, citations)``."""

IsDisconnected = Callable[[], Awaitable[bool]]

# Failures a generalist fallback cannot fix: the request itself is wrong (too long, bad value, unknown name),
# the client went away, or the server is shutting down (an APIError: 503 while draining).
_NO_FALLBACK = (ClientGone, APIError, ContextLengthError, RequestRejectedError, ConfigError, NotFoundError)
Kind = Literal["chat", "complete"]
T = TypeVar("T")


@dataclass
class _Work:
    """A request on its way: the snapshot it runs on, who answers, and what to send."""

    snap: Snapshot
    decision: Decision
    kind: Kind
    original: Any  # the messages or prompt as the client sent them
    req: Any  # the wire request (sampling settings)
    request_id: str = ""  # the response's id (and the captured record's)
    shadows: list[Target] = field(default_factory=list)  # specialists that answer it too, in shadow


class Gateway:
    """Everything behind the HTTP routes. Create with :meth:`start`, stop with :meth:`close`.

    Args:
        spec: the validated ecosystem.
        spec_path: the file it came from (SIGHUP / ``/admin/reload`` re-read it).
        loader: builds a backend from a model name; :func:`cadre.runtime.load_backend` by default.
        router_factory: builds the router of a spec; by default ``cadre.route`` (load or fit from examples).
        grounder: ``(KnowledgeRef, messages) -> (messages with passages, citations)``; by default
            :class:`CorpusGrounder` (``cadre.knowledge.ground``).
        shadow_agreement: ``(shadow answer, generalist answer) -> [0, 1]``, counted on /metrics for each
            shadow answer (``cadre serve`` passes ``cadre.evaluate``'s exact match); None: not counted.
    """

    def __init__(
        self,
        spec: EcosystemSpec,
        *,
        spec_path: str | Path | None = None,
        loader: BackendLoader | None = None,
        router_factory: RouterFactory | None = None,
        grounder: Grounder | None = None,
        metrics: Metrics | None = None,
        shadow_agreement: Agreement | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.admission = Admission(spec.server.queue_size)
        self.metrics.queue_depth.set_function(lambda: self.admission.active)
        self.served = ServedModels(
            spec,
            spec_path=Path(spec_path) if spec_path else None,
            loader=loader,
            router_factory=router_factory or build_router,
            metrics=self.metrics,
            on_swap=self._resize_queue,
        )
        self._grounder = grounder or CorpusGrounder()
        self.started = 0.0
        self.draining = False
        self._jobs: weakref.WeakSet[Job] = weakref.WeakSet()  # submitted, for abort_in_flight
        self.capture = Capture(self.metrics)  # records answers when the spec's capture: block says so
        self.shadows = ShadowRunner(self.metrics, agreement=shadow_agreement)

    # -- lifecycle and models (see ServedModels) ------------------------------------------------------------

    @property
    def spec_path(self) -> Path | None:
        return self.served.spec_path

    @property
    def snapshot(self) -> Snapshot:
        return self.served.snapshot

    @property
    def spec(self) -> EcosystemSpec:
        return self.snapshot.spec

    @property
    def current_spec(self) -> EcosystemSpec:
        """The running spec, or the one being started (never raises)."""
        return self.served.current_spec

    async def start(self) -> None:
        """Load every base model (once each), the adapters over them, the generalist and the router."""
        await self.served.start()
        self.capture.sync(self.spec)
        self.started = time.time()

    async def close(self, *, drain_s: float = 30.0) -> None:
        """Finish in-flight requests (up to ``drain_s``), then release every model."""
        self.draining = True
        deadline = time.perf_counter() + drain_s
        while self.admission.active and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await self.shadows.close()
        await self.served.close(deadline=deadline)
        await asyncio.to_thread(self.capture.close)

    async def reload(self, spec: EcosystemSpec | None = None) -> dict[str, Any]:
        """Swap in a new ecosystem (default: re-read the spec file) without dropping requests in flight."""
        result = await self.served.reload(spec)
        self.capture.sync(self.spec)
        return result

    async def upsert_specialist(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add or replace one specialist (admin endpoint); its adapter must live under the adapter root."""
        return await self.served.upsert_specialist(data)

    async def remove_specialist(self, name: str) -> dict[str, Any]:
        return await self.served.remove_specialist(name)

    def models(self) -> ModelList:
        return self.served.model_list()

    def _resize_queue(self, snap: Snapshot) -> None:
        self.admission.limit = snap.spec.server.queue_size

    # -- limits and admission -------------------------------------------------------------------------------

    def _check_limits(self, max_tokens: int | None, prompt_chars: int) -> None:
        limits = self.spec.server
        if max_tokens is not None and max_tokens > limits.max_tokens_limit:
            raise APIError(
                400,
                f"max_tokens={max_tokens} is above this server's limit of {limits.max_tokens_limit}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        if prompt_chars > limits.max_prompt_chars:
            raise APIError(
                400,
                f"the prompt has {prompt_chars} characters, above this server's limit of {limits.max_prompt_chars}",
                param="messages",
                code="context_length_exceeded",
            )

    def _admit(self) -> float:
        if self.draining:
            raise APIError(
                503,
                "the server is shutting down; retry on another instance",
                code="shutting_down",
                headers={"Retry-After": "5"},
            )
        try:
            return self.admission.acquire()
        except CadreError:
            self.metrics.rejected.inc()
            raise APIError(
                429,
                f"server busy ({self.admission.active} requests in progress); retry later",
                code="queue_full",
                headers={"Retry-After": str(self.admission.retry_after_s())},
            ) from None

    def log_unknown(self, endpoint: str, fields: list[str]) -> None:
        if fields:
            log.warning("%s: ignoring request fields cadre does not support: %s", endpoint, ", ".join(fields))

    # -- running a job, with fallback -----------------------------------------------------------------------

    def _timeout(self, target: Target) -> float:
        s = self.spec.server
        return s.generalist_timeout_s if target.kind == "generalist" else s.specialist_timeout_s

    async def _prepare_chat(
        self, target: Target, messages: Sequence[ChatMessage]
    ) -> tuple[list[ChatMessage], list[dict[str, Any]]]:
        msgs = merge_system(target.system_prompt, messages)
        if target.knowledge is None:
            return msgs, []
        return await asyncio.to_thread(self._grounder, target.knowledge, msgs)

    def _honour(self, target: Target, req: Any, params: SamplingParams) -> SamplingParams:
        """``params`` with what ``req`` asks beyond plain text, as ``target``'s backend can honour it; a field it
        cannot honour is a 400 naming it (never a plain-text answer that silently ignores it).

        A backend says what it honours with class attributes: ``forwards_response_format`` / ``supports_grammar``
        (JSON output), ``serves_logprobs``, ``forwards_tools`` (tool calling, passed to the endpoint as is).
        """
        backend = self.served.worker(target).backend
        unsupported: list[str] = []
        try:
            wants_json, schema = req.json_format()
        except ValueError as err:
            raise APIError(400, str(err), param="response_format", code="invalid_value") from None
        if wants_json:
            if getattr(backend, "forwards_response_format", False):
                params = replace(params, response_format=req.response_format)
            elif getattr(backend, "supports_grammar", False):
                params = replace(params, grammar=json_grammar(schema))
            else:
                unsupported.append("response_format")
        n_top = req.logprobs_wanted()
        if n_top is not None:
            if getattr(backend, "serves_logprobs", False):
                params = replace(params, logprobs=True, top_logprobs=n_top)
            else:
                unsupported.append("logprobs")
        tool_fields = req.tool_fields()
        if tool_fields:
            legacy = [f for f in tool_fields if f in ("functions", "function_call")]
            if legacy or not getattr(backend, "forwards_tools", False):
                unsupported.extend(legacy or tool_fields)
            elif req.tool_choice not in (None, "none", "auto") and not req.tools:
                raise APIError(
                    400,
                    "tool_choice asks for a tool call but the request has no tools; send tools or drop tool_choice",
                    param="tool_choice",
                    code="invalid_value",
                )
            elif req.tools:
                params = replace(
                    params,
                    tools=req.tools,
                    tool_choice=req.tool_choice,
                    parallel_tool_calls=req.parallel_tool_calls,
                )
        if unsupported:
            raise APIError(
                400,
                f"{unsupported[0]} is not supported for model {target.name!r}: cadre cannot honour it there, and "
                f"answering plain text instead would be wrong; remove {', '.join(unsupported)} from the request",
                param=unsupported[0],
                code="unsupported_parameter",
            )
        return params

    async def _submit(self, target: Target, kind: Kind, payload: Any, req: Any, *, stream: bool) -> Job:
        d = target.decoding
        params = req.to_sampling_params(
            max_tokens=d.max_tokens, temperature=d.temperature, top_p=d.top_p, stop=tuple(d.stop)
        )
        params = self._honour(target, req, params)
        if kind == "chat":
            job = Job(kind="chat", params=params, adapter=target.adapter, messages=payload, stream=stream)
        else:
            job = Job(kind="complete", params=params, adapter=target.adapter, prompt=payload, stream=stream)
        await self.served.worker(target).submit(job)
        self._jobs.add(job)
        return job

    def abort_in_flight(self, message: str) -> int:
        """End every job still running with a 503 (drain timeout at shutdown); returns how many there were."""
        err = APIError(503, message, code="shutting_down", headers={"Retry-After": "5"})
        jobs = [j for j in self._jobs if not j.cancelled.is_set()]
        for job in jobs:
            job.abort(err)
        return len(jobs)

    def _fallback_info(self, target: Target, info: CadreInfo, err: BaseException) -> CadreInfo:
        cause = "timeout" if isinstance(err, TimeoutError) else "error"
        self.metrics.fallbacks.labels(target.name, cause).inc()
        detail = "timed out" if cause == "timeout" else f"failed ({type(err).__name__})"
        log.warning("specialist %r %s (%s); the generalist answers", target.name, detail, err)
        return CadreInfo(
            route=GENERALIST,
            reason=f"fallback: specialist {target.name!r} {detail}",
            score=info.score,
            requested=info.requested,
            fallback=True,
        )

    async def _run(
        self, work: _Work, *, stream: bool, wait: Callable[[Job, float], Awaitable[T]]
    ) -> tuple[Job, T, Target, CadreInfo]:
        """Submit to the decided target and ``wait`` (job, timeout) for it; when a specialist fails or times out
        before anything was sent, and the spec allows it, the generalist answers instead."""
        target, info, kind, original = work.decision.target, work.decision.info, work.kind, work.original
        payload = original
        if kind == "chat":
            payload, info.citations = await self._prepare_chat(target, original)
        job = await self._submit(target, kind, payload, work.req, stream=stream)
        try:
            return job, await wait(job, self._timeout(target)), target, info
        except _NO_FALLBACK:
            raise  # the client's own problem, the client left, or the server stops: another model would not help
        except Exception as err:
            gen = work.snap.generalist
            if target.kind != "specialist" or work.snap.spec.server.fallback != "generalist" or gen is None:
                raise
            info = self._fallback_info(target, info, err)
            payload = merge_system(gen.system_prompt, original) if kind == "chat" else original
            job = await self._submit(gen, kind, payload, work.req, stream=stream)
            return job, await wait(job, self._timeout(gen)), gen, info

    async def _generate_admitted(
        self, work: _Work, is_disconnected: IsDisconnected | None, *, endpoint: str
    ) -> tuple[Completion, Target, CadreInfo]:
        """A non-streamed answer: take a queue slot, generate (with fallback), free the slot, count it."""

        async def wait(job: Job, timeout: float) -> Completion:
            return await self._await_result(job, timeout, is_disconnected)

        started = self._admit()
        try:
            _, completion, target, info = await self._run(work, stream=False, wait=wait)
        finally:
            self.admission.release(started)
        self._account(endpoint, target, info, completion.usage, started)
        self._record(work, target, info, completion, started)
        return completion, target, info

    def _record(
        self, work: _Work, target: Target, info: CadreInfo, answer: Completion, started: float
    ) -> None:
        """Capture the answer; when it is shadowed, capture it in any case and start the shadows."""
        shadowed = bool(work.shadows) and target.kind == "generalist" and self.capture.recorder is not None
        self.capture.record(
            work.request_id, work.kind, work.original, target.name, info, answer, started, force=shadowed
        )
        if shadowed and self.capture.recorder is not None:

            async def generate(shadow: Target) -> Completion:
                payload = work.original
                if work.kind == "chat":
                    payload, _ = await self._prepare_chat(shadow, work.original)
                job = await self._submit(shadow, work.kind, payload, work.req, stream=False)
                return await self._await_result(job, self._timeout(shadow), None)

            self.shadows.launch(
                work.shadows,
                snap=work.snap,
                request_id=work.request_id,
                answer=answer.text,
                recorder=self.capture.recorder,
                generate=generate,
            )

    async def _await_result(
        self, job: Job, timeout: float, is_disconnected: IsDisconnected | None
    ) -> Completion:
        deadline = time.perf_counter() + timeout
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError
                done, _ = await asyncio.wait({job.result}, timeout=min(remaining, 0.25))
                if done:
                    return job.result.result()
                if is_disconnected is not None and await is_disconnected():
                    self.metrics.cancelled.inc()
                    raise ClientGone
        finally:
            job.cancel()

    def _account(self, endpoint: str, target: Target, info: CadreInfo, usage: Usage, started: float) -> None:
        m = self.metrics
        how = "fallback" if info.fallback else ("router" if info.requested == AUTO_MODEL else "name")
        m.routed.labels(target.name, how).inc()
        m.tokens.labels(target.name, "prompt").inc(usage.prompt_tokens)
        m.tokens.labels(target.name, "completion").inc(usage.completion_tokens)
        m.generation.labels(target.name).observe(time.perf_counter() - started)

    @staticmethod
    def headers(info: CadreInfo) -> dict[str, str]:
        h = {
            "x-cadre-route": info.route,
            "x-cadre-reason": info.reason.encode("ascii", "replace").decode()[:200],
        }
        if info.score is not None:
            h["x-cadre-score"] = f"{info.score:.4f}"
        if info.fallback:
            h["x-cadre-fallback"] = "1"
        return h

    async def _plan(self, req: Any, kind: Kind, original: Any, messages: Sequence[ChatMessage]) -> _Work:
        """Choose who answers ``messages`` (the request as chat) on the current snapshot."""
        snap = self.snapshot
        decision = await choose_target(snap, req.model, messages, metrics=self.metrics)
        plan = self.shadows.plan(snap, decision.target, decision.info)
        return _Work(
            snap,
            Decision(plan.target, plan.info),
            kind,
            original,
            req,
            new_id("chatcmpl" if kind == "chat" else "cmpl"),
            plan.shadows,
        )

    # -- chat -----------------------------------------------------------------------------------------------

    def _chat_input(self, req: ChatCompletionRequest) -> list[ChatMessage]:
        self.log_unknown("/v1/chat/completions", req.unknown_fields())
        try:
            messages = req.chat_messages()
        except ValueError as err:
            raise APIError(400, str(err), param="messages", code="invalid_content") from None
        try:
            req.logprobs_wanted()
        except ValueError as err:
            raise APIError(400, str(err), param="top_logprobs", code="invalid_value") from None
        self._check_limits(req.requested_max_tokens(), sum(len(m["content"]) for m in messages))
        return messages

    async def chat(
        self, req: ChatCompletionRequest, *, is_disconnected: IsDisconnected | None = None
    ) -> tuple[ChatCompletionResponse, dict[str, str]]:
        messages = self._chat_input(req)
        work = await self._plan(req, "chat", messages, messages)
        completion, target, info = await self._generate_admitted(work, is_disconnected, endpoint="chat")
        response = ChatCompletionResponse(
            id=work.request_id,
            model=target.name,
            choices=[
                ChatChoice(
                    message=AssistantMessage(
                        content=completion.text or (None if completion.tool_calls else ""),
                        tool_calls=tool_calls_out(completion.tool_calls),
                    ),
                    finish_reason=finish_reason(completion.finish_reason),
                    logprobs=chat_logprobs(completion.logprobs, req.logprobs_wanted()),
                )
            ],
            usage=usage_info(completion.usage),
            cadre=info,
        )
        return response, self.headers(info)

    async def chat_stream(self, req: ChatCompletionRequest) -> StreamResult:
        messages = self._chat_input(req)
        return await self._stream(await self._plan(req, "chat", messages, messages))

    # -- completions ----------------------------------------------------------------------------------------

    def _completion_input(self, req: CompletionRequest) -> str:
        self.log_unknown("/v1/completions", req.unknown_fields())
        try:
            prompt = req.prompt_text()
        except ValueError as err:
            raise APIError(400, str(err), param="prompt") from None
        if not prompt:
            raise APIError(400, "prompt is empty; send some text", param="prompt", code="empty_prompt")
        if req.echo:
            raise APIError(400, "echo is not supported by this server; remove it", param="echo")
        self._check_limits(req.requested_max_tokens(), len(prompt))
        return prompt

    async def complete(
        self, req: CompletionRequest, *, is_disconnected: IsDisconnected | None = None
    ) -> tuple[CompletionResponse, dict[str, str]]:
        prompt = self._completion_input(req)
        work = await self._plan(req, "complete", prompt, [{"role": "user", "content": prompt}])
        completion, target, info = await self._generate_admitted(
            work, is_disconnected, endpoint="completions"
        )
        response = CompletionResponse(
            id=work.request_id,
            model=target.name,
            choices=[
                CompletionChoice(
                    text=completion.text,
                    finish_reason=finish_reason(completion.finish_reason),
                    logprobs=completion_logprobs(completion.logprobs, req.logprobs_wanted()),
                )
            ],
            usage=usage_info(completion.usage),
            cadre=info,
        )
        return response, self.headers(info)

    async def complete_stream(self, req: CompletionRequest) -> StreamResult:
        prompt = self._completion_input(req)
        return await self._stream(
            await self._plan(req, "complete", prompt, [{"role": "user", "content": prompt}])
        )

    # -- streaming ------------------------------------------------------------------------------------------

    async def _first_event(self, job: Job, timeout: float) -> tuple[str, Any]:
        try:
            kind, payload = await asyncio.wait_for(job.events.get(), timeout=timeout)
        except TimeoutError:
            job.cancel()
            raise
        if kind == "error":
            job.cancel()
            raise payload
        return kind, payload

    async def _stream(self, work: _Work) -> StreamResult:
        kind, req = work.kind, work.req
        started = self._admit()
        try:
            job, first, target, info = await self._run(work, stream=True, wait=self._first_event)
        except BaseException:
            self.admission.release(started)
            raise
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        closed = False

        def close(finished: bool = False) -> None:
            # Idempotent; also called after the response when the client left before the body ever started.
            nonlocal closed
            if closed:
                return
            closed = True
            job.cancel()
            self.admission.release(started)
            if not finished:
                self.metrics.cancelled.inc()

        ttft = self.metrics.ttft.labels(target.name)
        pieces: list[StreamChunk] = []

        def done(usage: Usage) -> None:
            self._account(kind, target, info, usage, started)
            answer = replace(collect_stream(iter(pieces)), usage=usage)  # text, tool calls, finish reason
            self._record(work, target, info, answer, started)

        body = sse_events(
            kind,
            job,
            first,
            model=target.name,
            info=info,
            include_usage=include_usage,
            on_first_token=lambda: ttft.observe(time.perf_counter() - started),
            on_done=done,
            close=close,
            n_top=req.logprobs_wanted(),
            rid=work.request_id,
            pieces=pieces,
        )
        return StreamResult(body=body, headers=self.headers(info), close=close)

    # -- embeddings -----------------------------------------------------------------------------------------

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        self.log_unknown("/v1/embeddings", req.unknown_fields())
        if req.model not in EMBEDDING_ALIASES:
            raise did_you_mean(req.model, EMBEDDING_ALIASES, kind="embedding model")
        texts = req.texts()
        if not texts or any(not isinstance(t, str) for t in texts):
            raise APIError(400, "input must be a non-empty string or list of strings", param="input")
        if len(texts) > 2048:
            raise APIError(400, "at most 2048 inputs per request", param="input")
        self._check_limits(None, max(len(t) for t in texts))
        if req.dimensions is not None:
            raise APIError(400, "dimensions is not supported (the model has 384)", param="dimensions")
        started = self._admit()
        try:
            vectors, n_tokens = await asyncio.to_thread(embed_texts, texts)
        finally:
            self.admission.release(started)
        data = []
        for i, row in enumerate(vectors):
            if req.encoding_format == "base64":
                data.append(
                    EmbeddingData(index=i, embedding=base64.b64encode(row.astype("<f4").tobytes()).decode())
                )
            else:
                data.append(EmbeddingData(index=i, embedding=[float(x) for x in row]))
        self.metrics.tokens.labels(EMBEDDING_MODEL, "prompt").inc(n_tokens)
        return EmbeddingResponse(
            data=data, model=EMBEDDING_MODEL, usage=UsageInfo(prompt_tokens=n_tokens, total_tokens=n_tokens)
        )
