from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def disk_bytes(db: Path) -> bytes:
    """Everything SQLite keeps on disk for ``db``: the file, its WAL and its shared-memory index."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(f"{db}{suffix}")
        if p.exists():
            out += p.read_bytes()
    return out


class CachedEmbedder:
    """The real bundled MiniLM, each text embedded once per session (the traffic tests reuse their texts)."""

    def __init__(self) -> None:
        from cadre.runtime.embeddings import get_embedder

        self.inner = get_embedder()
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.encode(missing, batch_size=batch_size), strict=True):
                self.cache[t] = v
        return (
            np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.inner.dim), np.float32)
        )


@pytest.fixture(scope="session")
def embedder() -> CachedEmbedder:
    return CachedEmbedder()
