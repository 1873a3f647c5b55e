"""Shape checks on the vectors handed to a store: float32, contiguous, of the store's dimension."""

from __future__ import annotations

from typing import Any

import numpy as np

from cadre.errors import StoreError

__all__ = ["embedding_matrix", "query_vector"]


def embedding_matrix(embeddings: Any, rows: int, dim: int) -> np.ndarray:
    """``embeddings`` as a contiguous float32 ``(rows, dim)`` array; StoreError on any other shape."""
    vecs = np.ascontiguousarray(embeddings, dtype=np.float32)
    if vecs.shape != (rows, dim):
        raise StoreError(f"expected embeddings of shape ({rows}, {dim}), got {vecs.shape}")
    return vecs


def query_vector(query_embedding: Any, dim: int) -> np.ndarray:
    """``query_embedding`` flattened to a contiguous float32 vector; StoreError unless it has ``dim`` values."""
    q = np.ascontiguousarray(query_embedding, dtype=np.float32).reshape(-1)
    if q.shape[0] != dim:
        raise StoreError(f"query vector has {q.shape[0]} dimensions; this store holds {dim}")
    return q
