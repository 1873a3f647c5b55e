"""Batched encoding shared by the routing encoders: sort by length (little padding), embed, restore the order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["encode_sorted"]


def encode_sorted(
    texts: Sequence[str] | str,
    forward: Callable[[list[str]], NDArray[np.float32]],
    *,
    dim: int,
    batch_size: int,
    lowercase: bool,
) -> NDArray[np.float32]:
    """(n, dim) rows of ``forward`` over ``texts`` (or one string), in batches of similar length, input order."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        return np.zeros((0, dim), dtype=np.float32)
    if lowercase:
        items = [t.lower() for t in items]
    order = np.argsort([-len(t) for t in items], kind="stable")
    out = np.zeros((len(items), dim), dtype=np.float32)
    for i in range(0, len(items), batch_size):
        idx = order[i : i + batch_size]
        out[idx] = forward([items[j] for j in idx])
    return out
