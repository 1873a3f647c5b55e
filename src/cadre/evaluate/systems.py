"""What can be evaluated: a model the runtime resolves, a base plus a specialist adapter, an OpenAI-compatible
endpoint, or the routed ecosystem (a router in front of specialists and a generalist).

On the command line a system is ``NAME=TARGET[,key=value...]`` (or just ``TARGET``)::

    base=smollm2-135m,shots=5                      # the bundled model, 5-shot
    spec=smollm2-135m,adapter=out/intents.gguf,shots=0
    gpt=openai:gpt-4o-mini@https://api.openai.com/v1,price=gpt-4o-mini
    eco=routed:runs/router,routes=intents:spec;invoices:spec2,generalist=base
    pipe=pipeline:support,ecosystem=ecosystem.yaml  # a pipeline of an ecosystem, run on each item's input

Keys: ``adapter``, ``shots``, ``mode`` (chat|complete), ``price`` (price-table entry), ``hardware`` (cost-model
hardware, default ``local``), ``price_per_hour`` (USD, overrides the hardware's), ``routes`` (route:system;...), ``generalist`` (a system name), ``api_key_env``, ``ecosystem`` (for ``pipeline:``).
Systems of one run that share a base model share one loaded copy of it (adapters chosen per request).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import Field, model_validator

from cadre.config.base import StrictModel, parse_spec
from cadre.errors import BackendError, ConfigError
from cadre.runtime.protocol import Backend, ChatMessage, Completion, SamplingParams
from cadre.runtime.registry import parse_model

if TYPE_CHECKING:
    from cadre.route.protocol import Router

__all__ = [
    "BackendSystem",
    "EvalRequest",
    "EvalSystem",
    "Generation",
    "PipelineSystem",
    "RoutedSystem",
    "SystemSpec",
    "build_systems",
    "parse_system",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class SystemSpec(StrictModel):
    """One system under evaluation."""

    name: str = Field(pattern=_NAME)
    kind: Literal["model", "openai", "routed", "pipeline"] = "model"
    model: str | None = None
    """A runtime model name: bundled name, GGUF path, HF folder, or ``openai:<model>@<base_url>``."""
    adapter: str | None = None
    """A LoRA adapter over ``model`` (GGUF adapter for llama.cpp, PEFT folder for transformers)."""
    shots: int | None = Field(default=None, ge=0, le=64)
    """Few-shot exemplars for this system (None: the task's ``prompt.few_shot.k``)."""
    mode: Literal["chat", "complete"] = "chat"
    """``complete`` renders the conversation as plain text for base models without a chat template."""
    price: str | None = None
    """Price-table entry (hosted APIs); None: the model id when it is in the table."""
    hardware: str = "local"
    """Cost-model hardware for locally run systems (a ``cadre cost`` catalog name or YAML file)."""
    price_per_hour: float | None = Field(default=None, ge=0)
    """Overrides the hardware's price per hour (USD) for the cost per request."""
    router: str | None = None
    routes: dict[str, str] = Field(default_factory=dict)
    """For ``routed``: route name -> the name of another system in the run."""
    generalist: str | None = None
    """For ``routed``: the system answering what no specialist should (route ``generalist``)."""
    api_key_env: str | None = None
    pipeline: str | None = None
    """For ``pipeline``: the pipeline's name in ``ecosystem``."""
    ecosystem: str | None = None
    """For ``pipeline``: the ecosystem.yaml that declares it (its models load in this process)."""

    @model_validator(mode="after")
    def _check(self) -> SystemSpec:
        if self.kind == "pipeline":
            if not self.pipeline or not self.ecosystem:
                raise ValueError(
                    f"system {self.name!r}: a pipeline system is pipeline:NAME,ecosystem=FILE (both are needed)"
                )
            return self
        if self.kind == "routed":
            if not self.router:
                raise ValueError(f"system {self.name!r}: a routed system needs router=DIR")
            if not self.routes and not self.generalist:
                raise ValueError(
                    f"system {self.name!r}: a routed system needs routes=... and/or generalist=..."
                )
        elif not self.model:
            raise ValueError(f"system {self.name!r}: give the model to run")
        if self.kind == "openai" and self.adapter:
            raise ValueError(f"system {self.name!r}: adapters apply to local models, not to an HTTP endpoint")
        return self

    @property
    def is_local(self) -> bool:
        return self.kind == "model"


def _default_name(display: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", display).strip("-.") or "system"
    return name[:64]


def parse_system(text: str) -> SystemSpec:
    """Parse ``NAME=TARGET[,key=value...]`` (see the module docstring) into a SystemSpec."""
    head, *opts = [p.strip() for p in text.split(",")]
    name, sep, target = head.partition("=")
    if not sep:
        name, target = "", head
    target = target.strip()
    if not target:
        raise ConfigError(f"--system {text!r}: give a model, e.g. --system base=smollm2-135m")
    data: dict[str, Any]
    if target.startswith("pipeline:"):
        data = {"kind": "pipeline", "pipeline": target.removeprefix("pipeline:")}
        display = target.replace(":", "-")
    elif target.startswith("routed:"):
        router = target.removeprefix("routed:")
        data = {"kind": "routed", "router": router}
        display = Path(target).name if "/" in target else target
    else:
        ref = parse_model(target)
        data = {"kind": "openai" if ref.is_remote else "model", "model": target}
        display = ref.name
    data["name"] = name.strip() or _default_name(display)
    for opt in opts:
        if not opt:
            continue
        key, sep, value = opt.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"--system {text!r}: option {opt!r} needs a value (key=value)")
        if key == "routes":
            routes = {}
            for pair in value.split(";"):
                route, sep2, system = pair.partition(":")
                if not sep2 or not route.strip() or not system.strip():
                    raise ConfigError(f"--system {text!r}: write routes as routes=ROUTE:SYSTEM;ROUTE:SYSTEM")
                routes[route.strip()] = system.strip()
            data["routes"] = routes
        else:
            data[key] = value.strip()
    return parse_spec(SystemSpec, data, source=f"--system {text}")


@dataclass
class Generation:
    """One answer and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    ttft_s: float | None
    finish_reason: str = "stop"
    route: str | None = None
    route_s: float = 0.0  # the router's share of latency_s (routed systems)
    reused: bool = False  # answered from a cache, not generated now (its latency is the original's)
    step_outputs: dict[str, Any] | None = None
    """A pipeline's output of every step, by step id (None for other systems)."""
    trace: list[dict[str, Any]] | None = None
    """A pipeline's trace, one entry per step (model, latency, tokens, escalations, vote detail)."""


@dataclass
class EvalRequest:
    """One item as the systems see it: the raw input text and a prompt builder per system.

    Systems may prompt differently (a base model few-shot, a specialist zero-shot), so the runner hands over
    a function that builds the messages for a given system spec; a router routes on ``text``. ``fresh`` asks
    a caching system to generate anyway (the runner's one-at-a-time latency probe).
    """

    text: str
    build: Callable[[SystemSpec], list[ChatMessage]]
    fresh: bool = False


@runtime_checkable
class EvalSystem(Protocol):
    """Anything the runner can ask: a request in, a timed answer out."""

    name: str
    spec: SystemSpec

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation: ...

    def close(self) -> None: ...


def messages_to_prompt(messages: Sequence[ChatMessage]) -> str:
    """A plain-text rendering of a conversation for models without a chat template (few-shot as text)."""
    parts: list[str] = []
    for m in messages:
        if m["role"] == "assistant":
            parts[-1] = parts[-1] + " " + m["content"].strip() if parts else m["content"]
        else:
            parts.append(m["content"].strip())
    return "\n\n".join(parts)


def _from_completion(c: Completion, wall: float) -> Generation:
    total = c.seconds_total if c.seconds_total > 0 else wall
    ttft = c.seconds_to_first_token if c.seconds_to_first_token > 0 else None
    return Generation(
        text=c.text,
        prompt_tokens=c.usage.prompt_tokens,
        completion_tokens=c.usage.completion_tokens,
        latency_s=total,
        ttft_s=ttft,
        finish_reason=c.finish_reason,
    )


class BackendSystem:
    """A loaded runtime Backend (optionally with one of its adapters)."""

    def __init__(
        self, spec: SystemSpec, backend: Backend, *, adapter: str | None = None, owns: bool = False
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.backend = backend
        self.adapter = adapter
        self._owns = owns

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation:
        messages = request.build(self.spec)
        t0 = time.perf_counter()
        if self.spec.mode == "complete":
            c = self.backend.complete(messages_to_prompt(messages), params, adapter=self.adapter)
        else:
            c = self.backend.chat(messages, params, adapter=self.adapter)
        gen = _from_completion(c, time.perf_counter() - t0)
        if c.finish_reason == "error":
            raise BackendError(f"{self.name}: the backend reported an error: {c.text[:200]}")
        return gen

    def close(self) -> None:
        if self._owns:
            self.backend.close()


class RoutedSystem:
    """The ecosystem: a router picks a specialist (another system) or the generalist for each request."""

    def __init__(
        self,
        spec: SystemSpec,
        router: Router,
        routes: Mapping[str, EvalSystem],
        generalist: EvalSystem | None,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.router = router
        self.routes = dict(routes)
        self.generalist = generalist

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation:
        from cadre.route.protocol import GENERALIST

        decision = self.router.route(request.text)
        target = self.routes.get(decision.route)
        if target is None:
            target = self.generalist
        if target is None:
            raise BackendError(
                f"{self.name}: the router chose {decision.route!r}, which maps to no system and there is no "
                f"generalist; add routes={decision.route}:SYSTEM or generalist=SYSTEM"
            )
        # the router sees the raw request; the chosen system builds its own prompt (its shots)
        gen = target.generate(request, params)
        gen.latency_s += decision.seconds
        if gen.ttft_s is not None:
            gen.ttft_s += decision.seconds
        gen.route = decision.route if decision.route in self.routes else GENERALIST
        gen.route_s = decision.seconds
        return gen

    def close(self) -> None:
        pass


class PipelineSystem:
    """A pipeline of an ecosystem: each item's input text is the pipeline's input; its answer is the output (JSON
    text when structured). Latency is the whole run; tokens are summed over the steps; each step's output and the
    trace go into the item's record (``step_outputs``, ``trace``)."""

    def __init__(self, spec: SystemSpec, runner: Any, models: Any) -> None:
        self.name = spec.name
        self.spec = spec
        self.runner = runner
        self.models = models

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation:
        result = self.runner.run(self.spec.pipeline, request.text)
        out = result.output
        text = json.dumps(out, ensure_ascii=False) if result.structured else ("" if out is None else str(out))
        return Generation(
            text=text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_s=result.latency_s,
            ttft_s=None,
            step_outputs=dict(result.outputs),
            trace=[s.to_dict() for s in result.steps],
        )

    def close(self) -> None:
        self.runner.close()
        self.models.close()


def _build_pipeline(spec: SystemSpec, backend_options: Mapping[str, Any] | None) -> PipelineSystem:
    from cadre.ecosystem import LocalModels, PipelineRunner, load_ecosystem

    eco = load_ecosystem(spec.ecosystem or "")
    name = spec.pipeline or ""
    if name not in eco.pipelines:
        raise ConfigError(
            f"system {spec.name!r}: {spec.ecosystem} has no pipeline {name!r} "
            f"(pipelines: {', '.join(eco.pipelines) or 'none'})"
        )
    models = LocalModels(eco, backend_options=backend_options)
    return PipelineSystem(spec, PipelineRunner({name: eco.pipelines[name]}, models), models)


def _adapter_name(system: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", system)[:60]


def build_systems(
    specs: Sequence[SystemSpec],
    *,
    prebuilt: Mapping[str, EvalSystem] | None = None,
    backend_options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, EvalSystem], dict[str, str]]:
    """Load every system; those sharing a base model share one backend (adapters per request).

    Returns:
        (systems by name, load errors by system name). A system that fails to load is reported in the errors
        (its items are recorded as failures) and the others still run.
    """
    from cadre.runtime import load_backend

    systems: dict[str, EvalSystem] = dict(prebuilt or {})
    errors: dict[str, str] = {}
    names = [s.name for s in specs] + list(systems)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"system names must be unique; {', '.join(dupes)} given more than once")

    groups: dict[tuple[str, str], list[SystemSpec]] = {}
    for s in specs:
        if s.kind in ("model", "openai"):
            groups.setdefault((s.model or "", s.api_key_env or ""), []).append(s)
    for (model, key_env), members in groups.items():
        adapters: dict[str, str | Path] = {_adapter_name(s.name): s.adapter for s in members if s.adapter}
        kw: dict[str, Any] = dict(backend_options or {})
        if key_env:
            if not os.environ.get(key_env):
                for s in members:
                    errors[s.name] = f"environment variable {key_env} (api_key_env) is not set"
                continue
            kw["api_key"] = os.environ[key_env]
        if members[0].kind == "openai":
            kw = {k: v for k, v in kw.items() if k in ("api_key", "timeout")}
        try:
            backend = load_backend(model, adapters=adapters or None, **kw)
        except Exception as err:  # one system failing to load must not stop the others
            for s in members:
                errors[s.name] = f"{type(err).__name__}: {err}"
            continue
        for i, s in enumerate(members):
            adapter = _adapter_name(s.name) if s.adapter else None
            systems[s.name] = BackendSystem(s, backend, adapter=adapter, owns=(i == 0))

    for s in specs:
        if s.kind == "pipeline":
            try:
                systems[s.name] = _build_pipeline(s, backend_options)
            except ConfigError:
                raise
            except Exception as err:
                errors[s.name] = f"{type(err).__name__}: {err}"
    for s in specs:
        if s.kind != "routed":
            continue
        unknown = [x for x in [*s.routes.values(), s.generalist] if x is not None and x not in systems]
        missing = [x for x in unknown if x not in errors]
        if missing:
            raise ConfigError(
                f"routed system {s.name!r} refers to {', '.join(missing)}, which are not systems of this run; "
                f"add them with --system NAME=..."
            )
        if unknown:
            errors[s.name] = f"its target systems failed to load: {', '.join(unknown)}"
            continue
        try:
            from cadre.route.io import load_router

            router = load_router(s.router or "")
        except Exception as err:
            errors[s.name] = f"{type(err).__name__}: {err}"
            continue
        systems[s.name] = RoutedSystem(
            s,
            router,
            {route: systems[target] for route, target in s.routes.items()},
            systems[s.generalist] if s.generalist else None,
        )
    return systems, errors
