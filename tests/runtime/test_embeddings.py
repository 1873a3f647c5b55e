from __future__ import annotations

import numpy as np

from cadre.runtime.embeddings import get_embedder


def test_bundled_embedder_is_normalized_and_semantic() -> None:
    e = get_embedder()
    assert e is get_embedder()  # one shared instance per process
    assert (e.model_id, e.dim) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    v = e.encode(["my invoice total is wrong", "the bill amount is incorrect", "the cat sat on the mat"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert e.encode([]).shape == (0, 384)
    assert e.encode("one").shape == (1, 384)
