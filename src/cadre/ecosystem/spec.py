"""The ecosystem spec: which specialists, router, generalist and server settings ``cadre serve`` runs.

An ``ecosystem.yaml`` is validated into :class:`EcosystemSpec` (unknown keys rejected, every error naming its key
path, e.g. ``ecosystem.yaml: specialists.1.name: ...``). Loading a spec reads no model: ``cadre check`` uses it to
validate a file in milliseconds.

Relative file paths in the spec (adapters, the router folder) are relative to the spec file's folder;
:func:`load_ecosystem` resolves them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from cadre.config.base import StrictModel, load_spec, parse_spec
from cadre.ecosystem.pipeline_spec import CallStep, PipelineSpec, ReactStep
from cadre.errors import ConfigError
from cadre.paths import safe_name
from cadre.route import RouterSpec
from cadre.runtime.registry import parse_model
from cadre.traffic.config import CaptureSpec

__all__ = [
    "AUTO_MODEL",
    "DecodingDefaults",
    "EcosystemSpec",
    "GeneralistSpec",
    "KnowledgeRef",
    "ModelOptions",
    "RoutingSpec",
    "ServerSpec",
    "SpecialistSpec",
    "check_adapter_path",
    "check_admin_specialist",
    "load_ecosystem",
    "parse_ecosystem",
]

AUTO_MODEL = "auto"
"""The model name that asks the router to choose."""

_RESERVED = {AUTO_MODEL, "generalist"}

Toggle = Literal["inherit", "on", "off"]
"""An engine option: ``inherit`` takes the model's (or the runtime's) setting."""


def _env_name(v: str | None) -> str | None:
    if v is not None and not v.replace("_", "a").isalnum():
        raise ValueError(f"{v!r} is not an environment variable name (letters, digits, '_')")
    return v


class DecodingDefaults(StrictModel):
    """Decoding settings used when a request does not give its own (OpenAI names and meanings)."""

    max_tokens: int = Field(default=256, ge=1, description="completion tokens when the request sets none")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, description="stop sequences added to every request")


class KnowledgeRef(StrictModel):
    """A knowledge corpus (built with ``cadre index add``) whose passages ground a specialist's answers."""

    corpus: str = Field(description="corpus name under $CADRE_HOME (see `cadre index add`)")
    top_k: int = Field(default=4, ge=1, le=32, description="passages injected into the prompt")

    @field_validator("corpus")
    @classmethod
    def _corpus_name(cls, v: str) -> str:
        return safe_name(v, kind="corpus")


class SpecialistSpec(StrictModel):
    """One specialist: a base model, optionally a LoRA adapter over it, and how it should behave."""

    name: str = Field(description="the `model` name clients send; letters, digits, '.', '_', '-'")
    base: str = Field(
        default="smollm2-135m",
        description="any model the runtime resolves: bundled name, GGUF path, HF id, or openai:<model>@<url>",
    )
    adapter: str | None = Field(
        default=None,
        description=(
            "LoRA adapter (PEFT folder or GGUF file) relative to this file; for an openai: base, the adapter "
            "name the remote server knows (vLLM --lora-modules NAME=PATH). Absent: the bare base serves"
        ),
    )
    description: str = ""
    examples: list[str] = Field(default_factory=list, description="example requests the router learns from")
    decoding: DecodingDefaults = Field(default_factory=lambda: DecodingDefaults())
    knowledge: KnowledgeRef | None = None
    system_prompt: str | None = None
    api_key_env: str | None = Field(
        default=None, description="for an openai: base, the environment variable holding its API key"
    )
    prompt_lookup: Toggle = Field(
        default="inherit",
        description="prompt-lookup drafting of greedy answers on the llama.cpp engine (docs/runtime.md); "
        "inherit: the base model's setting (models: block), on by default",
    )
    merge: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="serve from the base with the adapter folded in (one GGUF, no adapter tax): auto merges "
        "when no other specialist nor the generalist uses the same base; always merges even then (the base "
        "is loaded twice); never keeps the adapter separate (hot-swappable)",
    )

    @field_validator("api_key_env")
    @classmethod
    def _key_env(cls, v: str | None) -> str | None:
        return _env_name(v)

    @model_validator(mode="after")
    def _local_options(self) -> SpecialistSpec:
        remote = parse_model(self.base).is_remote
        if remote and self.prompt_lookup != "inherit":
            raise ValueError("prompt_lookup applies to local llama.cpp models; remove it for an openai: base")
        if self.merge == "always" and (remote or self.adapter is None):
            raise ValueError("merge: always needs a local base and an adapter to fold in; use auto or never")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        safe_name(v, kind="specialist")
        if v in _RESERVED:
            raise ValueError(f"{v!r} is reserved (it names the router or the generalist); pick another name")
        return v

    @field_validator("examples")
    @classmethod
    def _examples(cls, v: list[str]) -> list[str]:
        for i, text in enumerate(v):
            if not text.strip():
                raise ValueError(f"example {i} is empty")
        return v


class RoutingSpec(StrictModel):
    """How ``model="auto"`` picks a specialist: a router saved by ``cadre route fit`` (``path``), or one fitted
    from the specialists' ``examples`` when the server starts (``build``: the settings of ``cadre route fit``)."""

    path: str | None = Field(
        default=None, description="folder written by `cadre route fit` (relative to this file)"
    )
    build: RouterSpec = Field(
        default_factory=lambda: RouterSpec(),
        description="settings for fitting from the examples (cadre.route.RouterSpec: strategy, ood_alpha, "
        "min_confidence, ...)",
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="also send to the generalist any route scored below this (on top of the router's own gate)",
    )
    out_of_scope: list[str] = Field(
        default_factory=list,
        description="example requests no specialist should take (they calibrate the gate)",
    )

    @model_validator(mode="before")
    @classmethod
    def _build_settings(cls, data: Any) -> Any:
        """Validate ``build`` once, here, so that its problems read ``router: build.<key>: ...``."""
        if not isinstance(data, dict) or not isinstance(data.get("build"), dict):
            return data
        try:
            build = RouterSpec.model_validate(data["build"])
        except ValidationError as err:
            problems = "; ".join(
                f"build.{'.'.join(str(p) for p in e['loc'])}: "
                + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"])
                for e in err.errors()
            )
            raise ValueError(problems) from None
        return {**data, "build": build}


class GeneralistSpec(StrictModel):
    """The model that answers what no specialist should, and catches specialists' failures."""

    model: str = Field(description="any model the runtime resolves; usually openai:<model>@<base_url>")
    api_key_env: str | None = Field(
        default=None, description="environment variable holding the endpoint's API key (never the key itself)"
    )
    description: str = "the generalist"
    system_prompt: str | None = None
    decoding: DecodingDefaults = Field(default_factory=lambda: DecodingDefaults())

    @field_validator("api_key_env")
    @classmethod
    def _key_env(cls, v: str | None) -> str | None:
        return _env_name(v)

    def api_key(self) -> str | None:
        """The key read from ``api_key_env`` (None when unset or not configured)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelOptions(StrictModel):
    """Engine options of one loaded base model (a key of ``models:``: the name as written in ``base``/``model``)."""

    prompt_lookup: Toggle = Field(
        default="inherit",
        description="prompt-lookup drafting for every specialist over this model (each may override it); "
        "inherit: the runtime's default (on, sized by its cost-aware policy)",
    )


class ServerSpec(StrictModel):
    """Limits and policies of the HTTP server."""

    max_request_bytes: int = Field(default=1_000_000, ge=1024, description="larger bodies are refused (413)")
    max_tokens_limit: int = Field(
        default=1024, ge=1, description="largest max_tokens a request may ask for (400 above)"
    )
    max_prompt_chars: int = Field(default=32_000, ge=16, description="longer prompts are refused (400)")
    queue_size: int = Field(
        default=64, ge=1, description="requests admitted at once (running + waiting); beyond: 429"
    )
    max_batch_size: int = Field(
        default=8, ge=1, description="concurrent generations per loaded local base (the runtime batches them)"
    )
    remote_concurrency: int = Field(default=16, ge=1, description="parallel requests to one HTTP endpoint")
    specialist_timeout_s: float = Field(
        default=60.0, gt=0, description="a specialist slower than this falls back"
    )
    generalist_timeout_s: float = Field(default=120.0, gt=0)
    fallback: Literal["generalist", "error"] = Field(
        default="generalist",
        description="what a failed or timed-out specialist does: ask the generalist, or answer 5xx",
    )
    adapter_root: str | None = Field(
        default=None,
        description="admin-added specialists may only use adapters under this folder (relative to this file); "
        "unset: the spec's folder",
    )
    admin: bool = Field(
        default=False,
        description="enable POST /admin/specialists, DELETE /admin/specialists/NAME and POST /admin/reload; "
        "they need the admin key (--admin-key / CADRE_ADMIN_KEY), never the inference key",
    )
    admin_remote_urls: list[str] = Field(
        default_factory=list,
        description="the only openai: base URLs an admin-added specialist may use (exact match, e.g. "
        "http://10.0.0.5:8000/v1); empty: admin-added specialists run on local models only",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="extra Host header values (host or host:port) accepted on a loopback listener, e.g. a "
        "reverse proxy's name; 127.0.0.1, localhost and [::1] are always accepted there",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="extra Origin header values (scheme://host[:port]) accepted on a loopback listener; a "
        "request with any other foreign Origin is refused (403)",
    )
    drain_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="on SIGTERM, how long requests in flight may take to finish before they are ended with "
        "an error (new requests get 503 meanwhile)",
    )

    @field_validator("admin_remote_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [u.rstrip("/") for u in v]


class EcosystemSpec(StrictModel):
    """A whole ecosystem: specialists, the router over them, the generalist, and the server."""

    specialists: list[SpecialistSpec] = Field(min_length=1)
    router: RoutingSpec = Field(default_factory=lambda: RoutingSpec())
    generalist: GeneralistSpec | None = None
    server: ServerSpec = Field(default_factory=lambda: ServerSpec())
    pipelines: dict[str, PipelineSpec] = Field(
        default_factory=dict, description="specialists composed into one answer (see docs/pipelines.md)"
    )
    capture: CaptureSpec | None = Field(
        default=None,
        description="record chosen models' requests and answers (redacted) to SQLite; absent: nothing recorded "
        "(docs/flywheel.md)",
    )
    models: dict[str, ModelOptions] = Field(
        default_factory=dict,
        description="engine options per base model, keyed by the name the specialists' base (or the "
        "generalist's model) uses",
    )
    _base_dir: str | None = PrivateAttr(None)  # set by load_ecosystem: the spec's folder

    @property
    def base_dir(self) -> str | None:
        return self._base_dir

    @base_dir.setter
    def base_dir(self, value: str | None) -> None:
        self._base_dir = value

    @model_validator(mode="after")
    def _unique(self) -> EcosystemSpec:
        seen: set[str] = set()
        for spec in self.specialists:
            if spec.name in seen:
                raise ValueError(f"specialist name {spec.name!r} is used twice")
            seen.add(spec.name)
        if self.server.fallback == "generalist" and self.generalist is None:
            raise ValueError(
                "server.fallback is 'generalist' but no generalist is configured; add one or set 'error'"
            )
        self._check_pipelines()
        self._check_models()
        self._check_shadow()
        return self

    def _check_shadow(self) -> None:
        """A shadowed specialist exists, a generalist answers in its place, and a routed one has a route."""
        if self.capture is None:
            return
        for i, shadow in enumerate(self.capture.shadow):
            where = f"capture.shadow.{i}.specialist"
            spec = self.specialist(shadow.specialist)
            if spec is None:
                names = ", ".join(s.name for s in self.specialists)
                raise ValueError(f"{where}: no specialist {shadow.specialist!r} (specialists: {names})")
            if self.generalist is None:
                raise ValueError(f"{where}: shadow mode needs a generalist to answer; configure one")
            if shadow.scope == "routed" and not spec.examples and not self.router.path:
                raise ValueError(
                    f"{where}: {spec.name!r} has no examples, so the router never chooses it and scope 'routed' "
                    "would shadow nothing; give it examples or use scope: generalist"
                )

    def _check_models(self) -> None:
        """Every ``models:`` key is a local model the spec loads."""
        used = {s.base for s in self.specialists}
        if self.generalist is not None:
            used.add(self.generalist.model)
        local = sorted(m for m in used if not parse_model(m).is_remote)
        for name in self.models:
            if name not in local:
                raise ValueError(
                    f"models.{name}: no specialist or generalist loads this model locally "
                    f"(local models: {', '.join(local) or 'none'}); use the name as written in base/model"
                )

    def shares_base(self, specialist: SpecialistSpec) -> bool:
        """True when another specialist or the generalist runs on ``specialist``'s base model."""
        others = [s.base for s in self.specialists if s.name != specialist.name]
        if self.generalist is not None:
            others.append(self.generalist.model)
        return specialist.base in others

    def model_options(self, model: str) -> ModelOptions:
        return self.models.get(model) or ModelOptions()

    def _check_pipelines(self) -> None:
        """Every model a pipeline calls exists here; escalation needs a generalist."""
        models = [s.name for s in self.specialists] + [AUTO_MODEL]
        if self.generalist is not None:
            models.append("generalist")
        for name, pipeline in self.pipelines.items():
            safe_name(name, kind="pipeline")
            for i, step in pipeline.model_steps():
                where = f"pipelines.{name}.steps.{i}"
                if step.model not in models:
                    raise ValueError(f"{where}.model: no model {step.model!r} (models: {', '.join(models)})")
                if _escalates(step) and self.generalist is None:
                    raise ValueError(f"{where}.on_failure: escalate needs a generalist; configure one")

    def specialist(self, name: str) -> SpecialistSpec | None:
        return next((s for s in self.specialists if s.name == name), None)

    def resolve(self, path: str) -> Path:
        """A path from the spec, made absolute against the spec's folder."""
        p = Path(path).expanduser()
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p

    def adapter_root(self) -> Path:
        root = self.server.adapter_root
        return (self.resolve(root) if root else Path(self.base_dir or ".")).resolve()


def _escalates(step: CallStep | ReactStep) -> bool:
    if step.model == "generalist" or isinstance(step, ReactStep):
        return False
    return step.on_failure == "escalate" or getattr(step, "on_disagreement", None) == "escalate"


def parse_ecosystem(
    data: object, *, source: str = "ecosystem", base_dir: str | Path | None = None
) -> EcosystemSpec:
    """Validate a mapping as an ecosystem; ``base_dir`` anchors relative paths."""
    spec = parse_spec(EcosystemSpec, data, source=source)
    if base_dir is not None:
        spec.base_dir = str(Path(base_dir).resolve())
    return spec


def load_ecosystem(path: str | Path) -> EcosystemSpec:
    """Read and validate ``ecosystem.yaml``; relative paths in it resolve against its folder.

    Raises:
        NotFoundError: the file does not exist.
        ConfigError: the YAML is invalid (every problem listed, each with its key path).
    """
    p = Path(path)
    spec = load_spec(EcosystemSpec, p)
    spec.base_dir = str(p.resolve().parent)
    return spec


def check_adapter_path(spec: EcosystemSpec, adapter: str) -> Path:
    """Resolve a local adapter path and refuse one outside the adapter root (used for admin-added specialists)."""
    resolved = spec.resolve(adapter).resolve()
    root = spec.adapter_root()
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"adapter {adapter!r} is outside {root}; put it under that folder (server.adapter_root)"
        )
    return resolved


def _key_pairs(spec: EcosystemSpec) -> set[tuple[str, str]]:
    """(base URL, env name) pairs the spec already uses: where each secret is already sent."""
    pairs: set[tuple[str, str]] = set()
    entries = [(s.base, s.api_key_env) for s in spec.specialists]
    if spec.generalist is not None:
        entries.append((spec.generalist.model, spec.generalist.api_key_env))
    for model, env in entries:
        ref = parse_model(model)
        if env and ref.is_remote and ref.base_url:
            pairs.add((ref.base_url, env))
    return pairs


def check_admin_specialist(spec: EcosystemSpec, new: SpecialistSpec) -> None:
    """Refuse an admin-added specialist that could send a secret, or any request, where the file does not allow.

    A remote base must use a URL in ``server.admin_remote_urls``; an ``api_key_env`` must be one the ecosystem
    already sends to that same URL. So an admin call can never make the server send an environment variable to
    a new place (the exfiltration of issue 16, finding 1).

    Raises:
        ConfigError: the specialist names a URL or a key variable the ecosystem does not allow.
    """
    ref = parse_model(new.base)
    if ref.is_remote:
        allowed = spec.server.admin_remote_urls
        if ref.base_url not in allowed:
            raise ConfigError(
                f"base {new.base!r}: an admin-added specialist may only use the endpoints listed in "
                f"server.admin_remote_urls ({', '.join(allowed) or 'none'}); add the URL to the ecosystem file "
                "and reload it"
            )
    if new.api_key_env is None:
        return
    if not ref.is_remote:
        raise ConfigError("api_key_env is only for an openai: base; remove it")
    pairs = _key_pairs(spec)
    if (ref.base_url or "", new.api_key_env) not in pairs:
        known = sorted(env for url, env in pairs if url == ref.base_url)
        raise ConfigError(
            f"api_key_env {new.api_key_env!r}: an admin-added specialist may only use a key variable the "
            f"ecosystem file already sends to {ref.base_url} ({', '.join(known) or 'none'}); declare it in "
            "the file and reload it"
        )
