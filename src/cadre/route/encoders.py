"""The router's embedder, optionally at reduced precision for lower routing latency on CPU.

``fp32`` is the runtime's shared embedder unchanged. ``bf16`` casts the encoder to bfloat16 (embeddings within
cosine ~0.999 of fp32 on the bundled MiniLM). ``int8`` applies PyTorch dynamic int8 quantisation to the linear
layers (about twice as fast on one core; embeddings within cosine ~0.95 of fp32, so a router fitted at one
precision must be served at the same one: the precision is part of the recorded embedding model id).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cadre.errors import ConfigError, ModelLoadError
from cadre.route.protocol import Embedder

__all__ = ["PRECISIONS", "Precision", "get_route_embedder", "reduce_precision"]

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")


def get_route_embedder(name: str | None = None, *, precision: str = "fp32") -> Embedder:
    """The embedder for routing: ``name`` as ``cadre.runtime.embeddings.get_embedder`` takes it, at ``precision``.

    Raises:
        ConfigError: unknown precision.
        ModelLoadError: the model cannot be loaded.
    """
    from cadre.runtime.embeddings import DEFAULT_EMBEDDER, get_embedder

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown embedding precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    base = get_embedder(name or DEFAULT_EMBEDDER)
    if precision == "fp32":
        return base
    return _reduced(name or DEFAULT_EMBEDDER, precision, base.model_id)


@lru_cache(maxsize=4)
def _reduced(name: str, precision: str, base_id: str) -> Embedder:
    from sentence_transformers import SentenceTransformer

    from cadre.runtime.bundled import bundled_model_path, get_bundled

    path = bundled_model_path(name) if get_bundled(name) is not None else Path(name).expanduser()
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load embedding model from {path}: {err}; reinstall its package"
        ) from None
    model.eval()
    return reduce_precision(model, precision, f"{base_id}+{precision}")


def reduce_precision(model: object, precision: str, model_id: str) -> Embedder:
    """Wrap a loaded sentence-transformers ``model`` cast to bf16 or dynamically quantised to int8."""
    import torch

    from cadre.runtime.embeddings import Embedder as RuntimeEmbedder

    if precision == "bf16":
        model = model.to(torch.bfloat16)  # type: ignore[attr-defined]
    else:
        with warnings.catch_warnings():  # the eager dynamic-quantisation API warns about its future removal
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[arg-type]
    return _Float32Rows(RuntimeEmbedder(model, model_id=model_id))


class _Float32Rows:
    """Keeps the Embedder contract (float32 rows) whatever dtype the reduced model computes in."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id

    def encode(self, texts, *, batch_size: int = 64):  # type: ignore[no-untyped-def]
        import numpy as np

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.inner.encode(texts, batch_size=batch_size)
        return np.asarray(out, dtype=np.float32)
