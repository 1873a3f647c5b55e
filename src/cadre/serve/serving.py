"""The gateway's logic: names -> targets, routing, grounding, generation, fallback, limits, hot reload.

Routes (``chat.py``, ``completions.py``, ...) only parse and dispatch to a :class:`Gateway`. The gateway holds an
immutable :class:`Snapshot` of the ecosystem (targets, router); a reload builds a new snapshot next to the old
one and swaps it in one assignment, so requests in flight finish on what they started with.

One loaded backend per distinct base model: every specialist over ``smollm2-135m`` is an adapter on the same
llama.cpp model (the runtime batches requests that share an adapter). The generalist shares that backend too
when it names the same model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cadre.config.ecosystem import (
    AUTO_MODEL,
    DecodingDefaults,
    EcosystemSpec,
    KnowledgeRef,
    SpecialistSpec,
    check_adapter_path,
    load_ecosystem,
    parse_ecosystem,
)
from cadre.errors import BackendError, CadreError, ConfigError, did_you_mean
from cadre.route.protocol import GENERALIST, RouteDecision, Router
from cadre.runtime.protocol import Backend, ChatMessage, Completion, Usage
from cadre.serve.errors import APIError, ClientGone
from cadre.serve.metrics import Metrics
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
    ModelCard,
    ModelList,
    UsageInfo,
)
from cadre.serve.streaming import StreamResult, finish_reason, sse_events, usage_info
from cadre.serve.wiring import CorpusGrounder, build_router, embed_texts
from cadre.serve.workers import Admission, Job, Worker

__all__ = ["BackendLoader", "Gateway", "Snapshot", "StreamResult", "Target"]

log = logging.getLogger("cadre.serve")

BackendLoader = Callable[..., Backend]
"""``(name, *, adapters=..., **kw) -> Backend``; :func:`cadre.runtime.load_backend` by default."""

EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_ALIASES = {EMBEDDING_MODEL, "minilm", "sentence-transformers/all-MiniLM-L6-v2"}

IsDisconnected = Callable[[], Awaitable[bool]]


def _is_remote(model: str) -> bool:
    return model.startswith("openai:")


@dataclass(frozen=True)
class Target:
    """What a public model name runs on: a worker, the adapter on it, and how to prompt it."""

    name: str
    kind: Literal["specialist", "generalist"]
    worker_key: str
    adapter: str | None
    parent: str
    description: str
    system_prompt: str | None
    decoding: DecodingDefaults
    knowledge: KnowledgeRef | None = None
    note: str = ""  # e.g. "bare base: adapter not trained yet"


@dataclass
class Snapshot:
    """One consistent view of the ecosystem; replaced whole on reload."""

    spec: EcosystemSpec
    targets: dict[str, Target]
    router: Router | None
    router_note: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def generalist(self) -> Target | None:
        return self.targets.get(GENERALIST)


@dataclass
class _Decision:
    target: Target
    info: CadreInfo


def _merge_system(system_prompt: str | None, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Put the target's system prompt first; a client's own system text follows it in the same message."""
    msgs = [dict(m) for m in messages]
    if not system_prompt:
        return msgs  # type: ignore[return-value]
    if msgs and msgs[0]["role"] == "system":
        msgs[0]["content"] = f"{system_prompt}\n\n{msgs[0]['content']}"
        return msgs  # type: ignore[return-value]
    return [{"role": "system", "content": system_prompt}, *msgs]  # type: ignore[list-item]


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"] if messages else ""


class Gateway:
    """Everything behind the HTTP routes. Create with :meth:`start`, stop with :meth:`close`.

    Args:
        spec: the validated ecosystem.
        spec_path: the file it came from (SIGHUP / ``/admin/reload`` re-read it).
        loader: builds a backend from a model name; :func:`cadre.runtime.load_backend` by default.
        router_factory: builds the router of a spec; by default ``cadre.route`` (load or fit from examples).
        grounder: ``(KnowledgeRef, messages) -> (messages with passages, citations)``; by default
            :class:`CorpusGrounder` (``cadre.knowledge.ground``).
    """

    def __init__(
        self,
        spec: EcosystemSpec,
        *,
        spec_path: str | Path | None = None,
        loader: BackendLoader | None = None,
        router_factory: Callable[[EcosystemSpec], tuple[Router | None, str]] | None = None,
        grounder: Callable[
            [KnowledgeRef, Sequence[ChatMessage]], tuple[list[ChatMessage], list[dict[str, Any]]]
        ]
        | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.spec_path = Path(spec_path) if spec_path else None
        self.metrics = metrics or Metrics()
        self._loader = loader
        self._router_factory = router_factory or build_router
        self._grounder = grounder or CorpusGrounder()
        self._initial = spec
        self._snap: Snapshot | None = None
        self._workers: dict[str, Worker] = {}
        self._adapters: dict[
            tuple[str, str], tuple[str, str]
        ] = {}  # (worker, specialist) -> (path, adapter id)
        self._adapter_versions: dict[tuple[str, str], int] = {}
        self._router_key: str | None = None
        self._reload_lock = asyncio.Lock()
        self.admission = Admission(spec.server.queue_size)
        self.metrics.queue_depth.set_function(lambda: self.admission.active)
        self.started = 0.0
        self.draining = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        if self._snap is None:
            raise BackendError("the server is still starting; retry in a moment")
        return self._snap

    @property
    def spec(self) -> EcosystemSpec:
        return self.snapshot.spec

    @property
    def current_spec(self) -> EcosystemSpec:
        """The running spec, or the one being started (never raises)."""
        return self._snap.spec if self._snap is not None else self._initial

    async def start(self) -> None:
        """Load every base model (once each), the adapters over them, the generalist and the router."""
        self._snap = await self._build(self._initial)
        self.started = time.time()
        for target in self._snap.targets.values():
            if target.note:
                log.warning("%s %r: %s", target.kind, target.name, target.note)

    async def close(self, *, drain_s: float = 30.0) -> None:
        """Finish in-flight requests (up to ``drain_s``), then release every model."""
        self.draining = True
        deadline = time.perf_counter() + drain_s
        while self.admission.active and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(w.close(drain_s=max(0.0, deadline - time.perf_counter())) for w in workers))

    def _load(self, name: str, *, n_parallel: int | None = None, **kw: Any) -> Backend:
        """Load a backend (runs in a thread: resolving a bundled model may assemble its file)."""
        loader = self._loader
        if loader is None:
            from cadre.runtime import load_backend
            from cadre.runtime.registry import resolve_model

            loader = load_backend
            if n_parallel is not None and resolve_model(name).backend == "llamacpp":
                kw["n_parallel"] = n_parallel  # sequences the engine decodes together per step
        return loader(name, **kw)

    async def _ensure_worker(self, spec: EcosystemSpec, model: str, *, api_key_env: str | None = None) -> str:
        key = f"{model}|{api_key_env or ''}"
        if key in self._workers:
            return key
        kw: dict[str, Any] = {}
        if _is_remote(model):
            # The key comes only from the variable the spec names: never send a default key (OPENAI_API_KEY)
            # to an endpoint the spec did not give it to.
            kw["api_key"] = os.environ.get(api_key_env, "") if api_key_env else ""
            if api_key_env and not kw["api_key"]:
                log.warning("environment variable %s (the API key for %s) is not set", api_key_env, model)
            kw["timeout"] = spec.server.generalist_timeout_s
        else:
            kw["n_parallel"] = spec.server.max_batch_size
        backend = await asyncio.to_thread(self._load, model, **kw)
        remote = _is_remote(model)
        concurrency = spec.server.remote_concurrency if remote else max(spec.server.max_batch_size, 1)
        worker = self._workers[key] = Worker(backend, concurrency=concurrency, remote=remote)
        self.metrics.in_flight.labels(model.split("@", 1)[0]).set_function(worker.pending)
        return key

    async def _ensure_adapter(
        self, spec: EcosystemSpec, key: str, s: SpecialistSpec
    ) -> tuple[str | None, str]:
        """Make ``s``'s adapter available on worker ``key``; returns (adapter id or None, note)."""
        if s.adapter is None:
            return None, "no adapter: the bare base model answers, with the specialist's system prompt"
        backend = self._workers[key].backend
        if _is_remote(s.base):
            # The remote server (vLLM --lora-modules NAME=PATH, or another cadre) serves it as model NAME.
            await asyncio.to_thread(backend.load_adapter, s.name, s.adapter)  # type: ignore[attr-defined]
            return s.name, ""
        path = spec.resolve(s.adapter)
        if not path.exists():
            return (
                None,
                f"adapter {str(path)!r} does not exist yet (not trained?): the bare base model answers",
            )
        loaded = self._adapters.get((key, s.name))
        if loaded is not None and loaded[0] == str(path.resolve()):
            return loaded[1], ""
        version = self._adapter_versions.get((key, s.name), 0) + 1
        # A replaced adapter gets a new id, so requests queued on the old one finish on it (cache-key rule).
        adapter_id = s.name if version == 1 else f"{s.name}.v{version}"
        await asyncio.to_thread(backend.load_adapter, adapter_id, path)  # type: ignore[attr-defined]
        self._adapter_versions[(key, s.name)] = version
        self._adapters[(key, s.name)] = (str(path.resolve()), adapter_id)
        return adapter_id, ""

    async def _build(self, spec: EcosystemSpec) -> Snapshot:
        targets: dict[str, Target] = {}
        for s in spec.specialists:
            key = await self._ensure_worker(spec, s.base, api_key_env=s.api_key_env)
            adapter, note = await self._ensure_adapter(spec, key, s)
            targets[s.name] = Target(
                name=s.name,
                kind="specialist",
                worker_key=key,
                adapter=adapter,
                parent=s.base.split("@", 1)[0],
                description=s.description,
                system_prompt=s.system_prompt,
                decoding=s.decoding,
                knowledge=s.knowledge,
                note=note,
            )
        if spec.generalist is not None:
            g = spec.generalist
            key = await self._ensure_worker(spec, g.model, api_key_env=g.api_key_env)
            targets[GENERALIST] = Target(
                name=GENERALIST,
                kind="generalist",
                worker_key=key,
                adapter=None,
                parent=g.model.split("@", 1)[0],
                description=g.description,
                system_prompt=g.system_prompt,
                decoding=g.decoding,
            )
        router_key = json.dumps(
            [
                spec.router.model_dump(mode="json"),
                [[s.name, s.examples] for s in spec.specialists],
                spec.base_dir,
            ],
            sort_keys=True,
        )
        if self._snap is not None and router_key == self._router_key:
            router, note = self._snap.router, self._snap.router_note
        else:
            router, note = await asyncio.to_thread(self._router_factory, spec)
        self._router_key = router_key
        return Snapshot(spec=spec, targets=targets, router=router, router_note=note)

    # -- hot reload -----------------------------------------------------------------------------------------

    async def reload(self, spec: EcosystemSpec | None = None) -> dict[str, Any]:
        """Swap in a new ecosystem (default: re-read the spec file) without dropping requests in flight."""
        async with self._reload_lock:
            try:
                if spec is None:
                    if self.spec_path is None:
                        raise ConfigError(
                            "this server was not started from a file; POST a specialist instead"
                        )
                    spec = await asyncio.to_thread(load_ecosystem, self.spec_path)
                old = self.snapshot
                new = await self._build(spec)
            except CadreError:
                self.metrics.reloads.labels("failed").inc()
                raise
            self._snap = new
            self.admission.limit = spec.server.queue_size
            await self._retire_unused()
            self.metrics.reloads.labels("ok").inc()
            added = sorted(set(new.targets) - set(old.targets))
            removed = sorted(set(old.targets) - set(new.targets))
            log.info("ecosystem reloaded: added %s, removed %s", added or "-", removed or "-")
            return {"added": added, "removed": removed, "models": sorted(new.targets)}

    async def upsert_specialist(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add or replace one specialist (admin endpoint); its adapter must live under the adapter root."""
        current = self.spec
        try:
            new_spec_obj = SpecialistSpec.model_validate(data)
        except ValueError as err:
            raise ConfigError(f"invalid specialist: {err}") from None
        if new_spec_obj.adapter is not None and not _is_remote(new_spec_obj.base):
            check_adapter_path(current, new_spec_obj.adapter)
        known_bases = {s.base for s in current.specialists}
        if current.generalist is not None:
            known_bases.add(current.generalist.model)
        if not _is_remote(new_spec_obj.base) and new_spec_obj.base not in known_bases:
            from cadre.runtime.bundled import get_bundled

            if get_bundled(new_spec_obj.base) is None:
                raise ConfigError(
                    f"base {new_spec_obj.base!r}: an admin-added specialist must use a bundled model, a base already "
                    "in the ecosystem, or an openai: endpoint (no file paths from requests)"
                )
        specialists = [s for s in current.specialists if s.name != new_spec_obj.name] + [new_spec_obj]
        dumped = current.model_dump(mode="json")
        dumped["specialists"] = [s.model_dump(mode="json") for s in specialists]
        new = parse_ecosystem(dumped, source="admin", base_dir=current.base_dir)
        replaced = current.specialist(new_spec_obj.name) is not None
        result = await self.reload(new)
        return {"specialist": new_spec_obj.name, "replaced": replaced, **result}

    async def remove_specialist(self, name: str) -> dict[str, Any]:
        current = self.spec
        if current.specialist(name) is None:
            raise did_you_mean(name, [s.name for s in current.specialists], kind="specialist")
        dumped = current.model_dump(mode="json")
        dumped["specialists"] = [s.model_dump(mode="json") for s in current.specialists if s.name != name]
        if not dumped["specialists"]:
            raise ConfigError("cannot remove the last specialist")
        new = parse_ecosystem(dumped, source="admin", base_dir=current.base_dir)
        return {"specialist": name, **(await self.reload(new))}

    async def _retire_unused(self) -> None:
        used = {t.worker_key for t in self.snapshot.targets.values()}
        for key in [k for k in self._workers if k not in used]:
            worker = self._workers.pop(key)
            for adapter_key in [a for a in self._adapters if a[0] == key]:
                del self._adapters[adapter_key]
            asyncio.get_running_loop().create_task(worker.close())

    # -- models ---------------------------------------------------------------------------------------------

    def models(self) -> ModelList:
        snap = self.snapshot
        created = snap.created
        cards = [
            ModelCard(
                id=t.name,
                created=created,
                parent=t.parent,
                description=(t.description + (f" ({t.note})" if t.note else "")).strip(),
                kind=t.kind,
                adapter=t.adapter is not None,
            )
            for t in snap.targets.values()
        ]
        routes = ", ".join(snap.router.routes) if snap.router is not None else "none"
        cards.append(
            ModelCard(
                id=AUTO_MODEL,
                created=created,
                kind="router",
                description=f"the router picks a specialist ({routes}) or the generalist"
                + (f"; {snap.router_note}" if snap.router_note else ""),
            )
        )
        cards.append(ModelCard(id=EMBEDDING_MODEL, created=created, kind="embedding", description="384-dim"))
        return ModelList(data=cards)

    # -- choosing a target ----------------------------------------------------------------------------------

    async def _decide(self, snap: Snapshot, model: str, messages: Sequence[ChatMessage]) -> _Decision:
        if model != AUTO_MODEL:
            target = snap.targets.get(model)
            if target is None:
                known = [*snap.targets, AUTO_MODEL]
                raise did_you_mean(model, known, kind="model")
            reason = "requested by name" + (f"; {target.note}" if target.note else "")
            return _Decision(target, CadreInfo(route=target.name, reason=reason, requested=model))
        if snap.router is None:
            raise APIError(
                400,
                "model 'auto' needs a router: give the specialists `examples` or set router.path in the ecosystem"
                + (f" ({snap.router_note})" if snap.router_note else ""),
                param="model",
                code="no_router",
            )
        router = snap.router
        t0 = time.perf_counter()
        try:
            decision: RouteDecision = await asyncio.to_thread(router.route_chat, list(messages))
        except CadreError as err:
            if snap.generalist is None:
                raise
            log.warning("the router failed (%s); the generalist answers", err)
            self.metrics.fallbacks.labels(AUTO_MODEL, "router_error").inc()
            info = CadreInfo(route=GENERALIST, reason="the router failed: generalist", requested=AUTO_MODEL)
            info.fallback = True
            return _Decision(snap.generalist, info)
        self.metrics.router_latency.observe(time.perf_counter() - t0)
        route, reason = decision.route, decision.reason or "router"
        threshold = snap.spec.router.threshold
        if route != GENERALIST and threshold is not None and decision.score < threshold:
            route, reason = (
                GENERALIST,
                f"{decision.route} scored {decision.score:.3f} < router.threshold {threshold}",
            )
        if route == GENERALIST and snap.generalist is None:
            best = max(decision.scores.items(), key=lambda kv: kv[1])[0] if decision.scores else None
            if best is None or best not in snap.targets:
                raise APIError(
                    400,
                    "the router sent this request to the generalist, and none is configured",
                    param="model",
                    code="no_generalist",
                )
            route, reason = best, f"{reason}; no generalist configured: best specialist"
        target = snap.targets.get(route)
        if target is None:
            raise BackendError(
                f"the router chose {route!r}, which this ecosystem does not serve; refit the router"
            )
        return _Decision(
            target,
            CadreInfo(route=target.name, reason=reason, score=float(decision.score), requested=AUTO_MODEL),
        )

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

    async def _prepare_chat(
        self, target: Target, messages: Sequence[ChatMessage]
    ) -> tuple[list[ChatMessage], list[dict[str, Any]]]:
        msgs = _merge_system(target.system_prompt, messages)
        if target.knowledge is None:
            return msgs, []
        return await asyncio.to_thread(self._grounder, target.knowledge, msgs)

    # -- running a job --------------------------------------------------------------------------------------

    def _worker(self, target: Target) -> Worker:
        worker = self._workers.get(target.worker_key)
        if worker is None:
            raise BackendError(f"model {target.name!r} was unloaded by a reload; retry")
        return worker

    def _timeout(self, target: Target) -> float:
        s = self.spec.server
        return s.generalist_timeout_s if target.kind == "generalist" else s.specialist_timeout_s

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

    def _can_fall_back(self, snap: Snapshot, target: Target) -> bool:
        return (
            target.kind == "specialist"
            and snap.spec.server.fallback == "generalist"
            and snap.generalist is not None
        )

    def _make_job(
        self, target: Target, kind: Literal["chat", "complete"], payload: Any, req: Any, *, stream: bool
    ) -> Job:
        d = target.decoding
        params = req.to_sampling_params(
            max_tokens=d.max_tokens, temperature=d.temperature, top_p=d.top_p, stop=tuple(d.stop)
        )
        if kind == "chat":
            return Job(kind="chat", params=params, adapter=target.adapter, messages=payload, stream=stream)
        return Job(kind="complete", params=params, adapter=target.adapter, prompt=payload, stream=stream)

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

    async def _generate(
        self,
        snap: Snapshot,
        decision: _Decision,
        kind: Literal["chat", "complete"],
        original: Any,
        req: Any,
        is_disconnected: IsDisconnected | None,
    ) -> tuple[Completion, Target, CadreInfo]:
        target, info = decision.target, decision.info
        payload = original
        if kind == "chat":
            payload, info.citations = await self._prepare_chat(target, original)
        job = self._make_job(target, kind, payload, req, stream=False)
        await self._worker(target).submit(job)
        try:
            return await self._await_result(job, self._timeout(target), is_disconnected), target, info
        except ClientGone:
            raise
        except Exception as err:
            if not self._can_fall_back(snap, target):
                raise
            gen = snap.generalist
            assert gen is not None
            info = self._fallback_info(target, info, err)
            payload = _merge_system(gen.system_prompt, original) if kind == "chat" else original
            job = self._make_job(gen, kind, payload, req, stream=False)
            await self._worker(gen).submit(job)
            return await self._await_result(job, self._timeout(gen), is_disconnected), gen, info

    async def _generate_admitted(
        self,
        snap: Snapshot,
        decision: _Decision,
        kind: Literal["chat", "complete"],
        original: Any,
        req: Any,
        is_disconnected: IsDisconnected | None,
        *,
        endpoint: str,
    ) -> tuple[Completion, Target, CadreInfo]:
        """A non-streamed answer: take a queue slot, generate (with fallback), free the slot, count it."""
        started = self._admit()
        try:
            completion, target, info = await self._generate(
                snap, decision, kind, original, req, is_disconnected
            )
        finally:
            self.admission.release(started)
        self._account(endpoint, target, info, completion.usage, started)
        return completion, target, info

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

    def _admit(self) -> float:
        if self.draining:
            raise APIError(
                503, "the server is shutting down; retry on another instance", code="shutting_down"
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

    # -- chat -----------------------------------------------------------------------------------------------

    def _chat_input(self, req: ChatCompletionRequest) -> list[ChatMessage]:
        self.log_unknown("/v1/chat/completions", req.unknown_fields())
        try:
            messages = req.chat_messages()
        except ValueError as err:
            raise APIError(400, str(err), param="messages", code="invalid_content") from None
        if req.logprobs:
            raise APIError(400, "logprobs are not supported by this server yet", param="logprobs")
        self._check_limits(req.requested_max_tokens(), sum(len(m["content"]) for m in messages))
        return messages

    async def chat(
        self, req: ChatCompletionRequest, *, is_disconnected: IsDisconnected | None = None
    ) -> tuple[ChatCompletionResponse, dict[str, str]]:
        messages = self._chat_input(req)
        snap = self.snapshot
        decision = await self._decide(snap, req.model, messages)
        completion, target, info = await self._generate_admitted(
            snap, decision, "chat", messages, req, is_disconnected, endpoint="chat"
        )
        response = ChatCompletionResponse(
            model=target.name,
            choices=[
                ChatChoice(
                    message=AssistantMessage(content=completion.text),
                    finish_reason=finish_reason(completion.finish_reason),
                )
            ],
            usage=usage_info(completion.usage),
            cadre=info,
        )
        return response, self.headers(info)

    async def chat_stream(self, req: ChatCompletionRequest) -> StreamResult:
        messages = self._chat_input(req)
        snap = self.snapshot
        decision = await self._decide(snap, req.model, messages)
        return await self._stream(snap, decision, "chat", messages, req)

    # -- completions ----------------------------------------------------------------------------------------

    def _completion_input(self, req: CompletionRequest) -> str:
        self.log_unknown("/v1/completions", req.unknown_fields())
        try:
            prompt = req.prompt_text()
        except ValueError as err:
            raise APIError(400, str(err), param="prompt") from None
        if req.echo or req.logprobs:
            raise APIError(400, "echo and logprobs are not supported by this server yet", param="echo")
        self._check_limits(req.requested_max_tokens(), len(prompt))
        return prompt

    async def complete(
        self, req: CompletionRequest, *, is_disconnected: IsDisconnected | None = None
    ) -> tuple[CompletionResponse, dict[str, str]]:
        prompt = self._completion_input(req)
        snap = self.snapshot
        decision = await self._decide(snap, req.model, [{"role": "user", "content": prompt}])
        completion, target, info = await self._generate_admitted(
            snap, decision, "complete", prompt, req, is_disconnected, endpoint="completions"
        )
        response = CompletionResponse(
            model=target.name,
            choices=[
                CompletionChoice(text=completion.text, finish_reason=finish_reason(completion.finish_reason))
            ],
            usage=usage_info(completion.usage),
            cadre=info,
        )
        return response, self.headers(info)

    async def complete_stream(self, req: CompletionRequest) -> StreamResult:
        prompt = self._completion_input(req)
        snap = self.snapshot
        decision = await self._decide(snap, req.model, [{"role": "user", "content": prompt}])
        return await self._stream(snap, decision, "complete", prompt, req)

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

    async def _stream(
        self, snap: Snapshot, decision: _Decision, kind: Literal["chat", "complete"], original: Any, req: Any
    ) -> StreamResult:
        target, info = decision.target, decision.info
        started = self._admit()
        try:
            payload = original
            if kind == "chat":
                payload, info.citations = await self._prepare_chat(target, original)
            job = self._make_job(target, kind, payload, req, stream=True)
            await self._worker(target).submit(job)
            try:
                first = await self._first_event(job, self._timeout(target))
            except Exception as err:
                # Nothing was sent yet: the generalist can still take over transparently.
                if not self._can_fall_back(snap, target):
                    raise
                gen = snap.generalist
                assert gen is not None
                info = self._fallback_info(target, info, err)
                target = gen
                payload = _merge_system(gen.system_prompt, original) if kind == "chat" else original
                job = self._make_job(gen, kind, payload, req, stream=True)
                await self._worker(gen).submit(job)
                first = await self._first_event(job, self._timeout(gen))
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
        body = sse_events(
            kind,
            job,
            first,
            model=target.name,
            info=info,
            include_usage=include_usage,
            on_first_token=lambda: ttft.observe(time.perf_counter() - started),
            on_done=lambda usage: self._account(kind, target, info, usage, started),
            close=close,
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
                import base64

                data.append(
                    EmbeddingData(index=i, embedding=base64.b64encode(row.astype("<f4").tobytes()).decode())
                )
            else:
                data.append(EmbeddingData(index=i, embedding=[float(x) for x in row]))
        self.metrics.tokens.labels(EMBEDDING_MODEL, "prompt").inc(n_tokens)
        return EmbeddingResponse(
            data=data, model=EMBEDDING_MODEL, usage=UsageInfo(prompt_tokens=n_tokens, total_tokens=n_tokens)
        )
