"""The models behind the public names: loaded backends, the adapters over them, the router, and swapping them.

:class:`ServedModels` is the gateway's model registry (the role of vLLM's ``OpenAIServingModels``): it loads,
lists, reloads and retires; it serves no request. It holds an immutable :class:`Snapshot` of the ecosystem
(targets, router); a reload builds a new snapshot next to the old one and swaps it in one assignment, so requests
in flight finish on what they started with.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cadre.ecosystem.spec import (
    AUTO_MODEL,
    DecodingDefaults,
    EcosystemSpec,
    KnowledgeRef,
    SpecialistSpec,
    check_adapter_path,
    check_admin_specialist,
    load_ecosystem,
    parse_ecosystem,
)
from cadre.errors import BackendError, CadreError, ConfigError, did_you_mean
from cadre.route import GENERALIST, Router
from cadre.runtime.protocol import Backend
from cadre.runtime.registry import ModelRef, parse_model
from cadre.serve.merging import EngineFacts, engine_facts, lookup_option, merge_plan, merged_model
from cadre.serve.protocol import ModelCard, ModelList
from cadre.serve.telemetry import Metrics
from cadre.serve.wiring import EMBEDDING_MODEL
from cadre.serve.workers import Worker

__all__ = ["BackendLoader", "RouterFactory", "ServedModels", "Snapshot", "Target"]

log = logging.getLogger("cadre.serve")

BackendLoader = Callable[..., Backend]
"""``(name, *, adapters=..., **kw) -> Backend``; :func:`cadre.runtime.load_backend` by default."""

RouterFactory = Callable[[EcosystemSpec], tuple[Router | None, str]]
"""Builds the router of a spec, with a note saying how (or why there is none)."""


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
    facts: EngineFacts | None = None  # merged or not, the adapter's shape and tax (local adapters only)
    prompt_lookup: bool | None = None  # the engine option passed (None: the model's/runtime's default)


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


class ServedModels:
    """Loads, lists, reloads and retires what the gateway serves.

    Args:
        spec: the ecosystem to start with.
        spec_path: the file it came from (a reload without a spec re-reads it).
        loader: builds a backend from a model name; :func:`cadre.runtime.load_backend` by default.
        router_factory: builds the router of a spec.
        metrics: where loads and reloads are counted.
        on_swap: called with each snapshot as it becomes current (the gateway resizes its queue).
    """

    def __init__(
        self,
        spec: EcosystemSpec,
        *,
        spec_path: Path | None,
        loader: BackendLoader | None,
        router_factory: RouterFactory,
        metrics: Metrics,
        on_swap: Callable[[Snapshot], None],
    ) -> None:
        self.spec_path = spec_path
        self.metrics = metrics
        self.workers: dict[str, Worker] = {}
        self._initial = spec
        self._loader = loader
        self._router_factory = router_factory
        self._on_swap = on_swap
        self._snap: Snapshot | None = None
        self._adapters: dict[
            tuple[str, str], tuple[str, str]
        ] = {}  # (worker, specialist) -> (path|prompt lookup, adapter id)
        self._adapter_versions: dict[tuple[str, str], int] = {}
        self._router_key: str | None = None
        self._worker_labels: dict[str, str] = {}  # worker key -> model label on /metrics
        self._reload_lock = asyncio.Lock()

    @property
    def snapshot(self) -> Snapshot:
        if self._snap is None:
            raise BackendError("the server is still starting; retry in a moment")
        return self._snap

    @property
    def current_spec(self) -> EcosystemSpec:
        """The running spec, or the one being started (never raises)."""
        return self._snap.spec if self._snap is not None else self._initial

    async def start(self) -> None:
        """Load every base model (once each), the adapters over them, the generalist and the router."""
        self._snap = await self._build(self._initial)
        self.metrics.watch_engines(self._engine_stats)
        for target in self._snap.targets.values():
            if target.note:
                log.warning("%s %r: %s", target.kind, target.name, target.note)
            if target.facts is not None:
                lookup = {None: "model default", True: "on", False: "off"}[target.prompt_lookup]
                log.info("specialist %r: %s; prompt lookup %s", target.name, target.facts.describe(), lookup)

    def _engine_stats(self) -> dict[str, Any]:
        """Prompt-lookup and prefix-sharing counters per loaded model and the adapter tax per specialist, read
        at each scrape."""
        lookup, prefix = {}, {}
        for key, worker in list(self.workers.items()):
            label = self._worker_labels.get(key, key)
            if (stats := getattr(worker.backend, "lookup_stats", None)) is not None:
                lookup[label] = stats
            if (shared := getattr(worker.backend, "prefix_stats", None)) is not None:
                prefix[label] = shared
        taxes = {}
        if self._snap is not None:
            for t in self._snap.targets.values():
                if t.facts is not None and t.facts.paid_tax is not None:
                    taxes[t.name] = (t.facts.paid_tax, t.facts.merged)
        return {"lookup": lookup, "prefix": prefix, "adapter_tax": taxes}

    async def close(self, *, deadline: float) -> None:
        """Release every model, letting each finish its jobs until ``deadline`` (``time.perf_counter``)."""
        workers, self.workers = list(self.workers.values()), {}
        await asyncio.gather(*(w.close(drain_s=max(0.0, deadline - time.perf_counter())) for w in workers))

    def worker(self, target: Target) -> Worker:
        worker = self.workers.get(target.worker_key)
        if worker is None:
            raise BackendError(f"model {target.name!r} was unloaded by a reload; retry")
        return worker

    # -- loading --------------------------------------------------------------------------------------------

    def _load(
        self, ref: ModelRef, *, n_parallel: int | None = None, prompt_lookup: bool | None = None, **kw: Any
    ) -> Backend:
        """Load a backend (runs in a thread: resolving a bundled model may assemble its file)."""
        if self._loader is not None:
            return self._loader(ref.spec, **kw)
        from cadre.runtime import load_backend
        from cadre.runtime.registry import resolve_model

        resolved = resolve_model(ref.spec)
        if resolved.backend == "llamacpp":
            if n_parallel is not None:
                kw["n_parallel"] = n_parallel  # sequences the engine decodes together per step
            if prompt_lookup is not None:
                kw["prompt_lookup"] = prompt_lookup
        return load_backend(resolved, **kw)

    async def _ensure_worker(
        self,
        spec: EcosystemSpec,
        model: str,
        *,
        api_key_env: str | None = None,
        prompt_lookup: bool | None = None,
        label: str | None = None,
    ) -> str:
        """Load ``model`` once (``label``: its name on /metrics, default the model's display name)."""
        key = f"{model}|{api_key_env or ''}"
        if key in self.workers:
            return key
        ref = parse_model(model)
        kw: dict[str, Any] = {"prompt_lookup": prompt_lookup}
        if ref.is_remote:
            # The key comes only from the variable the spec names: never send a default key (OPENAI_API_KEY)
            # to an endpoint the spec did not give it to.
            kw["api_key"] = os.environ.get(api_key_env, "") if api_key_env else ""
            if api_key_env and not kw["api_key"]:
                log.warning("environment variable %s (the API key for %s) is not set", api_key_env, model)
            kw["timeout"] = spec.server.generalist_timeout_s
        else:
            kw["n_parallel"] = spec.server.max_batch_size
        backend = await asyncio.to_thread(self._load, ref, **kw)
        concurrency = spec.server.remote_concurrency if ref.is_remote else max(spec.server.max_batch_size, 1)
        worker = self.workers[key] = Worker(backend, concurrency=concurrency, remote=ref.is_remote)
        self._worker_labels[key] = label or ref.name
        self.metrics.in_flight.labels(label or ref.name).set_function(worker.pending)
        return key

    async def _ensure_adapter(
        self, spec: EcosystemSpec, key: str, s: SpecialistSpec
    ) -> tuple[str | None, str]:
        """Make ``s``'s adapter available on worker ``key``; returns (adapter id or None, note)."""
        if s.adapter is None:
            return None, "no adapter: the bare base model answers, with the specialist's system prompt"
        backend = self.workers[key].backend
        if parse_model(s.base).is_remote:
            # The remote server (vLLM --lora-modules NAME=PATH, or another cadre) serves it as model NAME.
            await asyncio.to_thread(backend.load_adapter, s.name, s.adapter)  # type: ignore[attr-defined]
            return s.name, ""
        path = spec.resolve(s.adapter)
        if not path.exists():
            # The spec's own (relative) name: clients see this note, and must not learn server paths.
            return (
                None,
                f"adapter {s.adapter!r} does not exist yet (not trained?): the bare base model answers",
            )
        lookup = lookup_option(spec, s, s.base) if s.prompt_lookup != "inherit" else None
        kw = {} if lookup is None else {"prompt_lookup": lookup}
        if kw and not hasattr(backend, "lookup_stats"):
            log.warning("specialist %r: prompt_lookup ignored: its base does not run on llama.cpp", s.name)
            kw = {}
        source = f"{path.resolve()}|{lookup}"  # a changed file or engine option loads it again
        loaded = self._adapters.get((key, s.name))
        if loaded is not None and loaded[0] == source:
            return loaded[1], ""
        version = self._adapter_versions.get((key, s.name), 0) + 1
        # A replaced adapter gets a new id, so requests queued on the old one finish on it (cache-key rule).
        adapter_id = s.name if version == 1 else f"{s.name}.v{version}"
        try:
            await asyncio.to_thread(backend.load_adapter, adapter_id, path, **kw)  # type: ignore[attr-defined]
        except CadreError as err:
            log.warning("adapter %s of specialist %r: %s", path, s.name, err)
            raise ConfigError(
                f"adapter {s.adapter!r} of specialist {s.name!r} could not be loaded: it is not a LoRA adapter "
                f"for base {s.base!r} (make one with `cadre export DIR --format gguf-adapter`); the server log has the details"
            ) from None
        self._adapter_versions[(key, s.name)] = version
        self._adapters[(key, s.name)] = (source, adapter_id)
        return adapter_id, ""

    async def _build(self, spec: EcosystemSpec) -> Snapshot:
        targets: dict[str, Target] = {}
        for s in spec.specialists:
            targets[s.name] = await self._specialist(spec, s)
        if spec.generalist is not None:
            g = spec.generalist
            lookup = lookup_option(spec, None, g.model)
            key = await self._ensure_worker(spec, g.model, api_key_env=g.api_key_env, prompt_lookup=lookup)
            targets[GENERALIST] = Target(
                name=GENERALIST,
                kind="generalist",
                worker_key=key,
                adapter=None,
                parent=parse_model(g.model).name,
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

    async def _specialist(self, spec: EcosystemSpec, s: SpecialistSpec) -> Target:
        """Load what ``s`` runs on: its base with the adapter folded in when its ``merge`` setting says so,
        else the shared base with the adapter over it."""
        remote = parse_model(s.base).is_remote
        path = spec.resolve(s.adapter) if s.adapter is not None and not remote else None
        reason = ""
        if path is not None and path.exists():
            merge, reason = await asyncio.to_thread(merge_plan, spec, s, path)
            if merge:
                try:
                    merged = await asyncio.to_thread(merged_model, s.base, path)
                    lookup = lookup_option(spec, s, s.base)
                    label = f"{parse_model(s.base).name}+{s.name}"
                    key = await self._ensure_worker(spec, str(merged), prompt_lookup=lookup, label=label)
                    facts = await asyncio.to_thread(engine_facts, path, merged=True, reason=reason)
                    return self._target(s, key, None, facts=facts, prompt_lookup=lookup)
                except CadreError as err:
                    log.warning("specialist %r: not merged, its adapter runs unmerged: %s", s.name, err)
                    reason = "merging failed (see the warning above)"
        lookup = lookup_option(spec, None, s.base)
        key = await self._ensure_worker(spec, s.base, api_key_env=s.api_key_env, prompt_lookup=lookup)
        adapter, note = await self._ensure_adapter(spec, key, s)
        if adapter is None or path is None:
            return self._target(s, key, adapter, note=note)
        facts = await asyncio.to_thread(engine_facts, path, merged=False, reason=reason)
        return self._target(
            s, key, adapter, note=note, facts=facts, prompt_lookup=lookup_option(spec, s, s.base)
        )

    @staticmethod
    def _target(s: SpecialistSpec, key: str, adapter: str | None, **kw: Any) -> Target:
        return Target(
            name=s.name,
            kind="specialist",
            worker_key=key,
            adapter=adapter,
            parent=parse_model(s.base).name,
            description=s.description,
            system_prompt=s.system_prompt,
            decoding=s.decoding,
            knowledge=s.knowledge,
            **kw,
        )

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
            self._on_swap(new)
            await self._retire_unused()
            self.metrics.reloads.labels("ok").inc()
            added = sorted(set(new.targets) - set(old.targets))
            removed = sorted(set(old.targets) - set(new.targets))
            log.info("ecosystem reloaded: added %s, removed %s", added or "-", removed or "-")
            return {"added": added, "removed": removed, "models": sorted(new.targets)}

    async def upsert_specialist(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add or replace one specialist (admin endpoint); its adapter must live under the adapter root."""
        current = self.snapshot.spec
        try:
            new_spec_obj = SpecialistSpec.model_validate(data)
        except ValueError as err:
            raise ConfigError(f"invalid specialist: {err}") from None
        check_admin_specialist(current, new_spec_obj)
        remote = parse_model(new_spec_obj.base).is_remote
        if new_spec_obj.adapter is not None and not remote:
            check_adapter_path(current, new_spec_obj.adapter)
        known_bases = {s.base for s in current.specialists}
        if current.generalist is not None:
            known_bases.add(current.generalist.model)
        if not remote and new_spec_obj.base not in known_bases:
            from cadre.runtime.bundled import get_bundled

            if get_bundled(new_spec_obj.base) is None:
                raise ConfigError(
                    f"base {new_spec_obj.base!r}: an admin-added specialist must use a bundled model, a base already "
                    "in the ecosystem, or an openai: endpoint (no file paths from requests)"
                )
        specialists = [s for s in current.specialists if s.name != new_spec_obj.name] + [new_spec_obj]
        new = self._with_specialists(current, specialists)
        replaced = current.specialist(new_spec_obj.name) is not None
        result = await self.reload(new)
        return {"specialist": new_spec_obj.name, "replaced": replaced, **result}

    async def remove_specialist(self, name: str) -> dict[str, Any]:
        current = self.snapshot.spec
        if current.specialist(name) is None:
            raise did_you_mean(name, [s.name for s in current.specialists], kind="specialist")
        remaining = [s for s in current.specialists if s.name != name]
        if not remaining:
            raise ConfigError("cannot remove the last specialist")
        return {"specialist": name, **(await self.reload(self._with_specialists(current, remaining)))}

    @staticmethod
    def _with_specialists(current: EcosystemSpec, specialists: list[SpecialistSpec]) -> EcosystemSpec:
        dumped = current.model_dump(mode="json")
        dumped["specialists"] = [s.model_dump(mode="json") for s in specialists]
        return parse_ecosystem(dumped, source="admin", base_dir=current.base_dir)

    async def _retire_unused(self) -> None:
        used = {t.worker_key for t in self.snapshot.targets.values()}
        for key in [k for k in self.workers if k not in used]:
            worker = self.workers.pop(key)
            self._worker_labels.pop(key, None)
            for adapter_key in [a for a in self._adapters if a[0] == key]:
                del self._adapters[adapter_key]
            asyncio.get_running_loop().create_task(worker.close())

    # -- listing --------------------------------------------------------------------------------------------

    def model_list(self) -> ModelList:
        """Every specialist, the generalist, ``auto`` and the embedding model, as OpenAI model cards."""
        snap = self.snapshot
        created = snap.created
        cards = [
            ModelCard(
                id=t.name,
                created=created,
                parent=t.parent,
                description=(t.description + (f" ({t.note})" if t.note else "")).strip(),
                kind=t.kind,
                adapter=t.adapter is not None or (t.facts is not None and t.facts.merged),
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
