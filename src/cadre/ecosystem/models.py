"""How a pipeline calls a model by name: the :class:`ModelCaller` protocol, and :class:`LocalModels`.

The executor never loads a model. ``cadre serve`` implements the protocol with the models it already serves; the
CLI and ``cadre eval`` use :class:`LocalModels`, which loads an ecosystem's specialists (base + adapter, one loaded
copy per base) and its generalist on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cadre.errors import BackendError, ConfigError
from cadre.runtime.protocol import Backend, ChatMessage, ChatRequest, Completion, SamplingParams

if TYPE_CHECKING:
    from cadre.ecosystem.spec import EcosystemSpec

__all__ = ["GENERALIST", "LocalModels", "ModelCaller", "ModelReply", "ModelRequest", "constrain"]

GENERALIST = "generalist"


@dataclass(frozen=True)
class ModelRequest:
    """One call: which model, the messages, the decoding, and the answer's shape when a step parses it.

    ``system`` None means the model's own system prompt from the ecosystem; ``n`` > 1 asks for that many samples
    (one batched decode where the backend batches).
    """

    model: str
    messages: Sequence[ChatMessage]
    params: SamplingParams
    json_schema: Mapping[str, Any] | None = None
    want_json: bool = False
    want_number: bool = False
    labels: tuple[str, ...] = ()
    n: int = 1


@dataclass
class ModelReply:
    """What came back: the completions, who answered (``auto`` resolved), and, when known, the cost in USD."""

    completions: list[Completion]
    model: str
    adapter: str | None = None
    cost_usd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ModelCaller(Protocol):
    """Call a model of the ecosystem by name (a specialist, ``generalist`` or ``auto``)."""

    def call(self, request: ModelRequest) -> ModelReply: ...


def constrain(backend: Backend, request: ModelRequest) -> SamplingParams:
    """The request's decoding, constrained to its answer's shape where the backend can: a GBNF grammar on
    llama.cpp (JSON schema, label set or number), ``response_format`` on an OpenAI-compatible endpoint."""
    params = request.params
    if not (request.want_json or request.want_number or request.labels):
        return params
    if getattr(backend, "supports_grammar", False):
        from cadre.runtime.grammars import NUMBER_GRAMMAR, choice_grammar, json_grammar

        if request.labels:
            return replace(params, grammar=choice_grammar(request.labels))
        if request.want_number:
            return replace(params, grammar=NUMBER_GRAMMAR)
        return replace(
            params, grammar=json_grammar(dict(request.json_schema) if request.json_schema else None)
        )
    if getattr(backend, "forwards_response_format", False) and request.want_json:
        fmt: dict[str, Any] = (
            {"type": "json_schema", "json_schema": {"name": "answer", "schema": dict(request.json_schema)}}
            if request.json_schema
            else {"type": "json_object"}
        )
        return replace(params, response_format=fmt)
    return params


@dataclass
class _Entry:
    base: str
    adapter: str | None
    adapter_path: Path | None
    system_prompt: str | None
    api_key_env: str | None


class LocalModels:
    """An ecosystem's models loaded in this process, for pipelines run by the CLI or ``cadre eval``.

    Specialists over one base share one loaded backend (their adapters loaded on it). ``auto`` asks the
    ecosystem's router (``router.path``, or fitted from the specialists' examples).
    """

    def __init__(self, spec: EcosystemSpec, *, backend_options: Mapping[str, Any] | None = None) -> None:
        self.spec = spec
        self._options = dict(backend_options or {})
        self._entries: dict[str, _Entry] = {}
        for s in spec.specialists:
            path = spec.resolve(s.adapter) if s.adapter else None
            has_file = path is not None and path.exists()
            self._entries[s.name] = _Entry(
                s.base, s.adapter, path if has_file else None, s.system_prompt, s.api_key_env
            )
        if spec.generalist is not None:
            g = spec.generalist
            self._entries[GENERALIST] = _Entry(g.model, None, None, g.system_prompt, g.api_key_env)
        self._backends: dict[tuple[str, str], Backend] = {}
        self._router: Any = None
        self._lock = threading.Lock()

    def _backend(self, entry: _Entry) -> Backend:
        from cadre.runtime import load_backend

        key = (entry.base, entry.api_key_env or "")
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                adapters: dict[str, str | Path] = {
                    name: e.adapter_path
                    for name, e in self._entries.items()
                    if (e.base, e.api_key_env or "") == key and e.adapter_path is not None
                }
                kw = dict(self._options)
                if entry.api_key_env:
                    kw["api_key"] = os.environ.get(entry.api_key_env)
                backend = load_backend(entry.base, adapters=adapters or None, **kw)
                self._backends[key] = backend
        return backend

    def _route(self, text: str) -> str:
        with self._lock:
            if self._router is None:
                from cadre.ecosystem.routing import build_router

                router, why = build_router(self.spec)
                if router is None:
                    raise ConfigError(f"model 'auto' needs a router, and this ecosystem has none ({why})")
                self._router = router
        decision = self._router.route(text)
        return decision.route if decision.route in self._entries else GENERALIST

    def call(self, request: ModelRequest) -> ModelReply:
        name = request.model
        if name == "auto":
            name = self._route(str(request.messages[-1]["content"]))
        entry = self._entries.get(name)
        if entry is None:
            raise ConfigError(f"model {name!r} is not in the ecosystem")
        backend = self._backend(entry)
        messages = list(request.messages)
        if messages and messages[0]["role"] != "system" and entry.system_prompt:
            messages.insert(0, {"role": "system", "content": entry.system_prompt})
        params = constrain(backend, request)
        adapter = name if entry.adapter_path is not None else None
        if request.n > 1:
            reqs = [
                ChatRequest(
                    messages=messages, params=replace(params, seed=(params.seed or 0) + i), adapter=adapter
                )
                for i in range(request.n)
            ]
            completions = backend.batch_chat(reqs)
        else:
            completions = [backend.chat(messages, params, adapter=adapter)]
        for c in completions:
            if c.finish_reason == "error":
                raise BackendError(f"model {name!r} reported an error: {c.text[:200]}")
        return ModelReply(completions, name, adapter)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
