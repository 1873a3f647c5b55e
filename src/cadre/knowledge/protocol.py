"""The knowledge layer's extension points: a Store of embedded chunks, and the passages retrieval returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Chunk", "Passage", "Store"]


@dataclass
class Chunk:
    """A piece of a source document, with where it came from."""

    chunk_id: str
    source: str  # file path or record id as given at ingestion
    start: int  # character offsets into the source text
    end: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Passage:
    """A retrieved chunk with its fused score; what grounding injects and cites."""

    chunk: Chunk
    score: float

    def citation(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk.chunk_id,
            "source": self.chunk.source,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "score": self.score,
        }


@runtime_checkable
class Store(Protocol):
    """Persists chunks with their embeddings and answers dense nearest-neighbour queries."""

    def add(self, chunks: Sequence[Chunk], embeddings: Any) -> None: ...

    def delete_source(self, source: str) -> int: ...

    def dense_search(
        self, query_embedding: Any, k: int, *, filters: dict[str, Any] | None = None
    ) -> list[tuple[Chunk, float]]: ...

    def count(self) -> int: ...
