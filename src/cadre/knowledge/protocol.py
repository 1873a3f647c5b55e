"""The knowledge layer's extension points: a Store of embedded chunks, and the passages retrieval returns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Chunk", "Filters", "Passage", "Store", "StoreFactory"]

# Metadata filters: key -> value (equality) or key -> list of values (any of). Keys are chunk metadata keys,
# plus "source" (the chunk's source) and "file" (the ingested file).
Filters = Mapping[str, Any]


@dataclass
class Chunk:
    """A piece of a source document, with where it came from."""

    chunk_id: str
    source: str  # file path or record id as given at ingestion
    start: int  # character offsets into the source text
    end: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def file(self) -> str:
        """The ingested file this chunk came from (a JSONL record's source is ``file#id``)."""
        return str(self.metadata.get("file", self.source))


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
    """Persists chunks with their embeddings and answers dense nearest-neighbour queries.

    Besides the vectors, a store keeps the content hash of each ingested file (so unchanged files are
    skipped) and a small key/value table of corpus facts (the embedding model id, a generation counter).
    """

    def add(self, chunks: Sequence[Chunk], embeddings: Any) -> None: ...

    def delete_source(self, source: str) -> int: ...

    def dense_search(
        self, query_embedding: Any, k: int, *, filters: dict[str, Any] | None = None
    ) -> list[tuple[Chunk, float]]: ...

    def count(self) -> int: ...

    def iter_chunks(self) -> Iterator[Chunk]:
        """Every chunk, in a stable order (the BM25 index is built from it)."""
        ...

    def source_hashes(self) -> dict[str, str]:
        """Ingested file -> content hash of the bytes it was indexed from."""
        ...

    def set_source_hash(self, source: str, content_hash: str) -> None: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...


class StoreFactory(Protocol):
    """How a registered store is opened: a corpus directory, the vector width and backend options."""

    def __call__(self, directory: Path, *, dim: int, options: Mapping[str, Any]) -> Store: ...
