"""Fixtures for the router tests: the real bundled MiniLM (memoised per text) and small generated data sets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cadre.route.data import Example, load_examples


class MemoEmbedder:
    """The real embedder, with a per-text cache so that tests fitting several routers embed each text once."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.model_id: str = inner.model_id  # type: ignore[attr-defined]
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            rows = self.inner.encode(todo, batch_size=batch_size)  # type: ignore[attr-defined]
            self.cache.update(zip(todo, rows))
        return np.stack([self.cache[t] for t in texts]).astype(np.float32)


@pytest.fixture(scope="session")
def embedder() -> MemoEmbedder:
    import torch

    from cadre.runtime.embeddings import get_embedder

    torch.set_num_threads(1)
    return MemoEmbedder(get_embedder())


@pytest.fixture(scope="session")
def router_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated multi-domain set: three specialist tasks plus out-of-scope requests (route null)."""
    from cadre.synth import write_router_data

    out = tmp_path_factory.mktemp("route-data")
    return write_router_data(
        ["intents", "invoices", "normalize"],
        out,
        n_per_task={"train": 40, "validation": 10, "test": 40},
        n_oos={"train": 30, "validation": 10, "test": 40},
        seed=0,
    )


@pytest.fixture(scope="session")
def train_examples(router_files: dict[str, Path], embedder: MemoEmbedder) -> list[Example]:
    exs = load_examples(router_files["train"])
    embedder.encode([ex.text for ex in exs])  # one batched pass fills the cache
    return exs


@pytest.fixture(scope="session")
def test_examples(router_files: dict[str, Path], embedder: MemoEmbedder) -> list[Example]:
    exs = load_examples(router_files["test"])
    embedder.encode([ex.text for ex in exs])
    return exs


@pytest.fixture
def memo_default_embedder(embedder: MemoEmbedder, monkeypatch: pytest.MonkeyPatch) -> MemoEmbedder:
    """Make the CLI (which loads the default embedder itself) use the cached real embedder."""
    monkeypatch.setattr("cadre.route.embedding.default_embedder", lambda *a, **k: embedder)
    return embedder
