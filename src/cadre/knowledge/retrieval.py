"""Lexical (BM25) ranking and reciprocal-rank fusion of ranked lists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cadre.knowledge.filters import Scalar, matches
from cadre.knowledge.protocol import Chunk

__all__ = ["RRF_K", "BM25Index", "reciprocal_rank_fusion"]

# Cormack, Clarke & Büttcher (SIGIR 2009), "Reciprocal rank fusion outperforms Condorcet and individual rank
# learning methods": score(d) = Σ_lists 1 / (k + rank(d)), with k = 60.
RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked lists of ids (best first) into one list of (id, fused score), best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    out = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
    return [list(t) for t in out]  # type: ignore[union-attr]


class BM25Index:
    """An in-memory bm25s index over a list of chunks (BM25 as in Robertson & Zaragoza 2009, Lucene variant)."""

    def __init__(self, chunks: Sequence[Chunk], texts: Sequence[str]) -> None:
        import bm25s

        self.chunks = list(chunks)
        self._bm25 = bm25s.BM25()
        tokens = _tokenize(list(texts))
        self._empty = not any(tokens)
        if self.chunks and not self._empty:
            self._bm25.index(tokens, show_progress=False)

    def search(
        self, query: str, k: int, *, filters: dict[str, list[Scalar]] | None = None
    ) -> list[tuple[Chunk, float]]:
        """The top ``k`` chunks by BM25 score that match ``filters`` (chunks with a zero score are left out)."""
        if not self.chunks or self._empty or k <= 0:
            return []
        vocab = self._bm25.vocab_dict
        tokens = [t for t in _tokenize([query])[0] if t in vocab]
        if not tokens:
            return []
        scores = np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)
        if filters:
            mask = np.array([matches(c, filters) for c in self.chunks], dtype=bool)
            scores = np.where(mask, scores, 0.0)
        n = min(k, int(np.count_nonzero(scores > 0)))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.chunks[i], float(scores[i])) for i in top]
