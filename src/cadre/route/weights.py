"""A digest of a model's weights: the identity of a fine-tuned encoder and the key of its ONNX export."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["weights_digest"]


def weights_digest(model: Any) -> str:
    """sha256 over the model's parameters (names, shapes, bytes): the same weights give the same digest."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        arr = tensor.detach().cpu().float().contiguous().numpy()
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()
