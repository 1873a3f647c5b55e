"""Peers the router benchmarks compare against, on the same embedder and data (imported by route_*.py).

- ``SemanticRouterPeer``: Aurelio's semantic-router ``IndexedRouter`` (top-5 mean similarity, Platt-calibrated
  confidence, threshold 0.5), given cadre's MiniLM through a ``DenseEncoder`` so it downloads nothing. Used only
  when ``semantic_router`` imports.
- ``KNNPeer``: a plain nearest-neighbour router written here: the label of the most similar training example, and
  that similarity as the in-domain score, with a threshold at the 5th percentile of leave-one-out similarities.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np


class KNNPeer:
    name = "plain-kNN (in-benchmark baseline)"

    def __init__(self, embedder: Any, texts: Sequence[str], routes: Sequence[str | None]) -> None:
        self.embedder = embedder
        keep = [i for i, r in enumerate(routes) if r is not None]
        self.x = embedder.encode([texts[i] for i in keep])
        self.y = [routes[i] for i in keep]
        sims = self.x @ self.x.T
        np.fill_diagonal(sims, -1.0)
        self.threshold = float(np.percentile(sims.max(axis=1), 5))

    def route(self, text: str) -> tuple[str | None, float, str]:
        s = self.embedder.encode([text])[0] @ self.x.T
        i = int(s.argmax())
        return (self.y[i] if s[i] >= self.threshold else None), float(s[i]), str(self.y[i])


class SemanticRouterPeer:
    name = "semantic-router IndexedRouter"

    def __init__(
        self, embedder: Any, texts: Sequence[str], routes: Sequence[str | None], calib: Sequence[Any] = ()
    ) -> None:
        from semantic_router import IndexedRouter, Route
        from semantic_router.encoders import DenseEncoder

        class CadreMiniLM(DenseEncoder):
            name: str = embedder.model_id

            def __call__(self, docs: list[Any]) -> list[list[float]]:
                return embedder.encode(list(docs)).tolist()  # type: ignore[no-any-return]

        by_route: dict[str, list[str]] = {}
        for t, r in zip(texts, routes):
            if r is not None:
                by_route.setdefault(r, []).append(t)
        self.router = IndexedRouter(
            encoder=CadreMiniLM(), routes=[Route(name=r, utterances=u) for r, u in sorted(by_route.items())]
        )
        # Platt calibration on held-out queries (None = no route should match), as semantic-router advises
        cal_x = [ex.text for ex in calib] or list(texts)
        cal_y = [ex.route for ex in calib] or list(routes)
        self.bar = 0.5
        try:
            self.router.fit(cal_x, cal_y)
        except ValueError:  # every calibration query right (no out-of-scope ones): keep raw similarities
            tops = [float(getattr(self.router(t, threshold=-1.0), "confidence", 0.0) or 0.0) for t in cal_x]
            self.bar = float(np.percentile(tops, 5))

    def route(self, text: str) -> tuple[str | None, float, str]:
        top = self.router(text, threshold=-1.0)
        name = getattr(top, "name", None)
        conf = float(getattr(top, "confidence", 0.0) or 0.0)
        return (name if conf >= self.bar else None), conf, str(name)


def make_peer(
    which: str, embedder: Any, texts: Sequence[str], routes: Sequence[str | None], calib: Sequence[Any] = ()
) -> Any:
    """``auto``: semantic-router when it imports, else the plain kNN baseline; ``calib``: held-out Examples."""
    if which in ("auto", "semantic-router"):
        try:
            t0 = time.perf_counter()
            peer = SemanticRouterPeer(embedder, texts, routes, calib)
            peer.fit_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
            return peer
        except ImportError:
            if which == "semantic-router":
                raise
    return KNNPeer(embedder, texts, routes)


class MemoEmbedder:
    """Wraps an embedder with a per-text cache so every router in a benchmark shares one embedding pass."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id: str = inner.model_id
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.encode(todo, batch_size=batch_size)))
        return np.stack([self.cache[t] for t in texts]).astype(np.float32)
