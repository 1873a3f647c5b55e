"""The server store: PostgreSQL with the pgvector extension, for corpora shared by many processes or hosts.

One corpus is three tables named after it (``<table>_chunks``, ``_sources``, ``_meta``); vectors are a
``vector(dim)`` column with an HNSW index on cosine distance. Filters compile to ``metadata @> '{...}'``
(jsonb containment, which the GIN index serves). Options: ``dsn`` (or the ``CADRE_PG_DSN`` environment
variable) and ``table`` (default: the corpus directory name).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadre.errors import StoreError
from cadre.knowledge.filters import COLUMN_KEYS, normalize_filters
from cadre.knowledge.protocol import Chunk
from cadre.knowledge.stores._locking import locked
from cadre.knowledge.stores._vectors import embedding_matrix, query_vector

__all__ = ["PgVectorStore"]

_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_COLUMNS = "chunk_id, source, start_offset, end_offset, text, metadata"


def _vector_literal(vec: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vec.tolist()) + "]"


def _row_chunk(row: Sequence[Any]) -> Chunk:
    meta = row[5] if isinstance(row[5], dict) else json.loads(row[5])
    return Chunk(row[0], row[1], row[2], row[3], row[4], meta)


class PgVectorStore:
    """A :class:`~cadre.knowledge.protocol.Store` in PostgreSQL + pgvector."""

    def __init__(self, dsn: str, *, table: str, dim: int) -> None:
        self._lock = threading.RLock()
        import psycopg

        if not _TABLE.match(table):
            raise StoreError(f"invalid pgvector table name {table!r}: use lowercase letters, digits and '_'")
        self.table = table
        self.dim = dim
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as err:
            raise StoreError(
                f"cannot connect to PostgreSQL ({err.__class__.__name__}: {str(err).strip()}); "
                "check the dsn option or CADRE_PG_DSN and that the server is running"
            ) from None
        t = table
        try:
            self._db.execute("CREATE EXTENSION IF NOT EXISTS vector")
            with self._db.transaction():
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {t}_chunks (id bigserial PRIMARY KEY, chunk_id text UNIQUE NOT NULL,"
                    f" file text NOT NULL, source text NOT NULL, start_offset int NOT NULL, end_offset int NOT NULL,"
                    f" text text NOT NULL, metadata jsonb NOT NULL, embedding vector({int(dim)}) NOT NULL)"
                )
                self._db.execute(f"CREATE INDEX IF NOT EXISTS {t}_file_idx ON {t}_chunks(file)")
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS {t}_metadata_gin ON {t}_chunks USING gin (metadata)"
                )
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS {t}_hnsw_idx ON {t}_chunks USING hnsw (embedding vector_cosine_ops)"
                )
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {t}_sources (file text PRIMARY KEY, content_hash text NOT NULL,"
                    " indexed_at double precision NOT NULL)"
                )
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {t}_meta (key text PRIMARY KEY, value text NOT NULL)"
                )
        except psycopg.Error as err:
            raise StoreError(
                f"cannot prepare pgvector tables {t}_*: {str(err).strip()}; is the pgvector extension installed "
                "on the server (Debian: postgresql-15-pgvector)?"
            ) from None

    @classmethod
    def open(cls, directory: Path, *, dim: int, options: Mapping[str, Any]) -> PgVectorStore:
        """The registry's factory: options ``dsn`` (default ``$CADRE_PG_DSN``) and ``table``."""
        unknown = set(options) - {"dsn", "table"}
        if unknown:
            raise StoreError(f"unknown pgvector store options {sorted(unknown)}: use 'dsn' and 'table'")
        dsn = str(options.get("dsn") or os.environ.get("CADRE_PG_DSN") or "")
        if not dsn:
            raise StoreError("the pgvector store needs a connection string: pass --dsn or set CADRE_PG_DSN")
        default_table = re.sub(r"[^a-z0-9_]", "_", directory.name.lower()) or "corpus"
        return cls(dsn, table=str(options.get("table") or f"cadre_{default_table}"), dim=dim)

    @locked
    def add(self, chunks: Sequence[Chunk], embeddings: Any) -> None:
        vecs = embedding_matrix(embeddings, len(chunks), self.dim)
        rows = [
            (c.chunk_id, c.file, c.source, c.start, c.end, c.text, json.dumps(c.metadata), _vector_literal(v))
            for c, v in zip(chunks, vecs)
        ]
        with self._db.transaction(), self._db.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table}_chunks (chunk_id, file, source, start_offset, end_offset, text, metadata,"
                " embedding) VALUES (%s,%s,%s,%s,%s,%s,%s::jsonb,%s::vector) ON CONFLICT (chunk_id) DO UPDATE SET"
                " file=excluded.file, source=excluded.source, start_offset=excluded.start_offset,"
                " end_offset=excluded.end_offset, text=excluded.text, metadata=excluded.metadata,"
                " embedding=excluded.embedding",
                rows,
            )

    @locked
    def delete_source(self, source: str) -> int:
        with self._db.transaction():
            cur = self._db.execute(
                f"DELETE FROM {self.table}_chunks WHERE file=%s OR source=%s", (source, source)
            )
            self._db.execute(f"DELETE FROM {self.table}_sources WHERE file=%s", (source,))
        return int(cur.rowcount)

    @locked
    def set_source_hash(self, source: str, content_hash: str) -> None:
        self._db.execute(
            f"INSERT INTO {self.table}_sources (file, content_hash, indexed_at) VALUES (%s,%s,%s) ON CONFLICT (file)"
            " DO UPDATE SET content_hash=excluded.content_hash, indexed_at=excluded.indexed_at",
            (source, content_hash, time.time()),
        )

    @locked
    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            f"INSERT INTO {self.table}_meta (key, value) VALUES (%s,%s) ON CONFLICT (key) DO UPDATE"
            " SET value=excluded.value",
            (key, value),
        )

    @locked
    def dense_search(
        self, query_embedding: Any, k: int, *, filters: dict[str, Any] | None = None
    ) -> list[tuple[Chunk, float]]:
        q = query_vector(query_embedding, self.dim)
        if k <= 0:
            return []
        clauses: list[str] = []
        params: list[Any] = [_vector_literal(q)]
        for key, values in normalize_filters(filters).items():
            if key in COLUMN_KEYS:
                clauses.append(f"{key} = ANY(%s)")
                params.append([str(v) for v in values])
            else:
                clauses.append("(" + " OR ".join(["metadata @> %s::jsonb"] * len(values)) + ")")
                params.extend(json.dumps({key: v}) for v in values)
        where = " AND ".join(clauses) or "TRUE"
        params.append(k)
        with self._db.transaction():
            # Filtered HNSW scans may stop early; iterative scans (pgvector >= 0.8) keep going until k rows match.
            if clauses:
                try:
                    with self._db.transaction():
                        self._db.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                except (
                    Exception
                ):  # an older pgvector without the setting: results are still correct, maybe fewer
                    pass
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, embedding <=> %s::vector AS d FROM {self.table}_chunks WHERE {where}"
                " ORDER BY d LIMIT %s",
                params,
            ).fetchall()
        return [(_row_chunk(r), 1.0 - float(r[6])) for r in rows]

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM {self.table}_chunks ORDER BY id").fetchall()
        return (_row_chunk(r) for r in rows)

    @locked
    def count(self) -> int:
        row = self._db.execute(f"SELECT count(*) FROM {self.table}_chunks").fetchone()
        return int(row[0]) if row else 0

    @locked
    def source_hashes(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._db.execute(f"SELECT file, content_hash FROM {self.table}_sources")}

    @locked
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute(f"SELECT value FROM {self.table}_meta WHERE key=%s", (key,)).fetchone()
        return str(row[0]) if row else None

    @locked
    def drop(self) -> None:
        """Remove this corpus's tables from the server."""
        for suffix in ("chunks", "sources", "meta"):
            self._db.execute(f"DROP TABLE IF EXISTS {self.table}_{suffix}")

    @locked
    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"PgVectorStore(table={self.table!r}, dim={self.dim})"
