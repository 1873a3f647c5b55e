"""Model names a user types -> which backend loads what.

Accepted forms (exact, no fuzzy matching; aliases are declared in ``catalog/models.yaml``):

- a bundled model name or alias: ``smollm2-135m``, ``gemma3-270m``
- a local path: a ``.gguf`` file (llama.cpp), or a folder with ``config.json`` (transformers)
- a backend prefix to force the engine: ``llamacpp:PATH``, ``transformers:PATH_OR_NAME``
  (``transformers:smollm2-135m`` runs the bundled GGUF in transformers via ``gguf_file=``)
- a Hugging Face hub id ``org/name``: used from the local HF cache only (cadre never downloads at run time)
- ``openai:<model>@<base_url>``: any OpenAI-compatible endpoint (vLLM, Ollama, llama-server, a hosted API)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from cadre.errors import ConfigError, ModelLoadError, NotFoundError
from cadre.registry import Registry
from cadre.runtime.bundled import bundled_model_path, get_bundled

__all__ = ["BACKENDS", "ModelRef", "parse_model", "resolve_model"]

BackendKind = Literal["llamacpp", "transformers", "openai"]

# name -> "module:Class"; third-party engines register through the `cadre.backends` entry-point group.
BACKENDS: Registry[type] = Registry("backends")
BACKENDS.register("llamacpp", "cadre.runtime.llamacpp:LlamaCppBackend")
BACKENDS.register("transformers", "cadre.runtime.transformers_backend:TransformersBackend")
BACKENDS.register("openai", "cadre.runtime.openai_http:OpenAIBackend")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PREFIXES = ("llamacpp:", "transformers:", "openai:")


@dataclass(frozen=True)
class ModelRef:
    """A model name, read once: the only place in cadre that takes a model string apart.

    :func:`parse_model` reads the text alone (no file system, no catalog): enough to know whether the model is
    remote, its display name and its endpoint. :func:`resolve_model` also finds the file and the engine.
    """

    spec: str  # what the user typed, stripped
    name: str  # the display name (bundled name, file stem, or the remote model id)
    backend: str | None  # None until resolved, unless forced by a prefix or implied by ``openai:``
    path: Path | None = None  # a GGUF file, or a HF model folder
    gguf_file: str | None = None  # for transformers: the GGUF file name inside ``path``
    remote_model: str | None = None  # for openai: the model id sent to the endpoint
    base_url: str | None = None  # for openai
    bundled: bool = False

    @property
    def is_remote(self) -> bool:
        """An OpenAI-compatible HTTP endpoint rather than weights on this machine."""
        return self.backend == "openai"

    def local_path(self, what: str) -> Path:
        """``path``, the weights on this machine.

        Raises:
            ModelLoadError: the model has none; ``what`` names what the engine needed.
        """
        if self.path is None:
            raise ModelLoadError(f"model {self.name!r} has no {what}")
        return self.path

    @property
    def is_local_endpoint(self) -> bool:
        """A remote endpoint on this machine (its requests cost no API price)."""
        host = urlparse(self.base_url or "").hostname or ""
        return self.is_remote and host in ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def _parse_openai(spec: str) -> ModelRef:
    body = spec.removeprefix("openai:")
    model, sep, base_url = body.rpartition("@")
    if not sep or not model or not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"model {spec!r}: write an OpenAI-compatible endpoint as openai:<model>@<base_url>, "
            "e.g. openai:gpt-4o-mini@https://api.openai.com/v1"
        )
    return ModelRef(
        spec=spec, name=model, backend="openai", remote_model=model, base_url=base_url.rstrip("/")
    )


def _split_prefix(spec: str) -> tuple[BackendKind | None, str]:
    for prefix in _PREFIXES:
        if spec.startswith(prefix):
            return prefix[:-1], spec[len(prefix) :]  # type: ignore[return-value]
    return None, spec


def parse_model(spec: str) -> ModelRef:
    """Read a model name without touching the disk: remote or local, display name, endpoint.

    A local model's ``backend`` is the forced prefix, if any, else None (see :func:`resolve_model`).

    Raises:
        ConfigError: a malformed ``openai:`` spec.
    """
    spec = spec.strip()
    if spec.startswith("openai:"):
        return _parse_openai(spec)
    forced, rest = _split_prefix(spec)
    stem = rest.rstrip("/")
    if "/" in stem or stem.endswith(".gguf"):
        stem = Path(stem).name.removesuffix(".gguf")
    return ModelRef(spec=spec, name=stem or rest, backend=forced)


def _hub_snapshot(hub_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:
        raise ModelLoadError(
            f"model {hub_id!r} looks like a Hugging Face hub id but is not in the local cache and cadre does not "
            f"download at run time; on a connected machine run `huggingface-cli download {hub_id} --local-dir "
            "DIR`, copy DIR here and pass its path"
        ) from None


def _from_path(path: Path, *, forced: BackendKind | None, spec: str) -> ModelRef:
    if not path.exists():
        raise NotFoundError(f"model file or folder {str(path)!r} does not exist; check the path ({spec!r})")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(
                f"{path} is not a .gguf file; pass a GGUF file or a Hugging Face model folder"
            )
        if forced == "transformers":
            return ModelRef(
                spec=spec, name=path.stem, backend="transformers", path=path.parent, gguf_file=path.name
            )
        return ModelRef(spec=spec, name=path.stem, backend="llamacpp", path=path)
    if (path / "config.json").is_file():
        if forced == "llamacpp":
            raise ModelLoadError(f"{path} is a Hugging Face folder; llama.cpp needs a .gguf file")
        return ModelRef(spec=spec, name=path.name, backend="transformers", path=path)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _from_path(ggufs[0], forced=forced, spec=spec)
    raise ModelLoadError(
        f"{path} holds neither config.json nor exactly one .gguf file ({len(ggufs)} found); pass the file itself"
    )


def resolve_model(spec: str) -> ModelRef:
    """Resolve a user-typed model name to a backend and a file (offline).

    Raises:
        ConfigError: a malformed ``openai:`` spec.
        NotFoundError: an unknown name or a missing path.
        ModelLoadError: a hub id that is not cached locally, or a bundled model whose package is missing.
    """
    ref = parse_model(spec)
    if ref.is_remote:
        return ref
    return replace(_resolve_local(_split_prefix(ref.spec)), spec=ref.spec)


def _resolve_local(parsed: tuple[BackendKind | None, str]) -> ModelRef:
    forced, spec = parsed
    entry = get_bundled(spec)
    if entry is not None:
        if entry.kind == "embedding":
            raise ModelLoadError(
                f"{spec!r} is an embedding model; use cadre.runtime.embeddings.get_embedder({entry.name!r})"
            )
        path = bundled_model_path(entry.name)
        if forced == "transformers":
            return ModelRef(
                spec=spec,
                name=entry.name,
                backend="transformers",
                path=path.parent,
                gguf_file=path.name,
                bundled=True,
            )
        return ModelRef(spec=spec, name=entry.name, backend="llamacpp", path=path, bundled=True)
    path = Path(spec).expanduser()
    if path.exists() or spec.endswith(".gguf") or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        return _from_path(path, forced=forced, spec=spec)
    if _HUB_ID.match(spec):
        snapshot = _hub_snapshot(spec)
        return _from_path(snapshot, forced=forced, spec=spec)
    from cadre.runtime.bundled import bundled_models

    names = [n for m in bundled_models() if m.kind != "embedding" for n in (m.name, *m.aliases)]
    raise NotFoundError(
        f"unknown model {spec!r}: use a bundled name ({', '.join(names)}), a .gguf path, a Hugging Face folder, "
        "or openai:<model>@<base_url>; `cadre models` lists what is available"
    )
