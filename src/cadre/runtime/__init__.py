"""cadre.runtime: one interface over llama.cpp, transformers and any OpenAI-compatible endpoint.

``load_backend(name)`` resolves a model name (see :mod:`cadre.runtime.registry`) and returns a
:class:`~cadre.runtime.protocol.Backend`. Heavy engines are imported only when a backend of that kind is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cadre.runtime.bundled import bundled_model_path, costmodel_id, list_models
from cadre.runtime.protocol import (
    Backend,
    ChatMessage,
    ChatRequest,
    Completion,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
    ToolCall,
    Usage,
    collect_stream,
)
from cadre.runtime.registry import ModelRef, parse_model, resolve_model

__all__ = [
    "Backend",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "ModelRef",
    "SamplingParams",
    "StreamChunk",
    "TokenLogprob",
    "ToolCall",
    "Usage",
    "bundled_model_path",
    "collect_stream",
    "costmodel_id",
    "list_models",
    "load_backend",
    "parse_model",
    "resolve_model",
]


def load_backend(
    name: str | ModelRef,
    *,
    adapters: dict[str, str | Path] | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    **kw: Any,
) -> Backend:
    """Load the model ``name`` (bundled name, path, hub id in the local cache, or ``openai:<model>@<url>``).

    Args:
        name: what the user typed (see :func:`cadre.runtime.registry.resolve_model`), or a ``ModelRef`` already
            resolved by it (so a caller that needed the backend kind does not resolve twice).
        adapters: LoRA adapters by name (GGUF files for llama.cpp, PEFT folders for transformers), chosen per
            request with ``adapter="name"``.
        n_ctx: context length per request (prompt + completion).
        n_threads: CPU threads (None: the engine's default).
        **kw: backend-specific options (e.g. ``n_parallel`` for llama.cpp, ``api_key``/``timeout`` for HTTP).

    Raises:
        NotFoundError, ModelLoadError, ConfigError: with a one-line message saying how to fix it.
    """
    from cadre.runtime.registry import BACKENDS

    if isinstance(name, ModelRef):
        ref = name if name.is_remote or name.path is not None else resolve_model(name.spec)
    else:
        ref = resolve_model(name)
    assert ref.backend is not None  # resolve_model always names the engine
    cls: Any = BACKENDS.get(ref.backend)
    backend: Backend = cls.from_ref(ref, adapters=adapters, n_ctx=n_ctx, n_threads=n_threads, **kw)
    return backend
