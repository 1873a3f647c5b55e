"""The default store: one SQLite file on disk, vectors in a sqlite-vec ``vec0`` table (no server).

Chunks and their metadata (JSON) live in an ordinary table; the ``vec0`` virtual table shares its rowids.
Unfiltered queries use the vec0 k-nearest-neighbour scan; filtered ones select the matching rows first
(``json_extract`` on the metadata) and rank exactly those by cosine distance, so a filter never starves the
top-k. The connection is apsw's: CPython's own ``sqlite3`` is often built without extension loading.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadre.errors import StoreError
from cadre.knowledge.filters import COLUMN_KEYS, normalize_filters
from cadre.knowledge.protocol import Chunk
from cadre.knowledge.stores._locking import locked
from cadre.knowledge.stores._vectors import embedding_matrix, query_vector

__all__ = ["SqliteVecStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    source TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file);
CREATE TABLE IF NOT EXISTS sources (file TEXT PRIMARY KEY, content_hash TEXT NOT NULL, indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "c.id, c.chunk_id, c.source, c.start, c.end, c.text, c.metadata"


def _row_chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


class SqliteVecStore:
    """A :class:`~cadre.knowledge.protocol.Store` in ``<directory>/store.sqlite``."""

    def __init__(self, path: Path, *, dim: int) -> None:
        self._lock = threading.RLock()
        import apsw
        import sqlite_vec

        self.path = path
        self.dim = dim
        try:
            self._db = apsw.Connection(str(path))
            self._db.enable_load_extension(True)
            self._db.load_extension(sqlite_vec.loadable_path())
            self._db.enable_load_extension(False)
            self._db.setbusytimeout(10_000)
            self._db.execute("PRAGMA journal_mode=WAL")
            with self._db:
                self._db.execute(_SCHEMA)
                self._db.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS vectors USING vec0("
                    f"embedding float[{int(dim)}] distance_metric=cosine)"
                )
        except apsw.Error as err:
            raise StoreError(
                f"cannot open the vector store {path}: {err}; check the path is writable"
            ) from None

    @classmethod
    def open(cls, directory: Path, *, dim: int, options: Mapping[str, Any]) -> SqliteVecStore:
        """The registry's factory: ``options`` may name the file (``{"file": "store.sqlite"}``)."""
        unknown = set(options) - {"file"}
        if unknown:
            raise StoreError(f"unknown sqlite-vec store options {sorted(unknown)}: the only option is 'file'")
        name = str(options.get("file", "store.sqlite"))
        if "/" in name or "\\" in name or name.startswith("."):
            raise StoreError(f"sqlite-vec option file={name!r} must be a plain file name inside the corpus")
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory / name, dim=dim)

    # --- writing -----------------------------------------------------------------------------------------
    @locked
    def add(self, chunks: Sequence[Chunk], embeddings: Any) -> None:
        vecs = embedding_matrix(embeddings, len(chunks), self.dim)
        with self._db:
            for chunk, vec in zip(chunks, vecs):
                self._db.execute("DELETE FROM vectors WHERE rowid IN (SELECT id FROM chunks WHERE chunk_id=?)",
                                 (chunk.chunk_id,))  # fmt: skip
                self._db.execute("DELETE FROM chunks WHERE chunk_id=?", (chunk.chunk_id,))
                self._db.execute(
                    "INSERT INTO chunks(chunk_id, file, source, start, end, text, metadata) VALUES (?,?,?,?,?,?,?)",
                    (chunk.chunk_id, chunk.file, chunk.source, chunk.start, chunk.end, chunk.text,
                     json.dumps(chunk.metadata, ensure_ascii=False)),
                )  # fmt: skip
                rowid = self._db.last_insert_rowid()
                self._db.execute(
                    "INSERT INTO vectors(rowid, embedding) VALUES (?, ?)", (rowid, vec.tobytes())
                )

    @locked
    def delete_source(self, source: str) -> int:
        with self._db:
            ids = [
                r[0]
                for r in self._db.execute("SELECT id FROM chunks WHERE file=? OR source=?", (source, source))
            ]
            self._db.executemany("DELETE FROM vectors WHERE rowid=?", [(i,) for i in ids])
            self._db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in ids])
            self._db.execute("DELETE FROM sources WHERE file=?", (source,))
        return len(ids)

    @locked
    def set_source_hash(self, source: str, content_hash: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO sources(file, content_hash, indexed_at) VALUES (?,?,?) ON CONFLICT(file) DO UPDATE "
                "SET content_hash=excluded.content_hash, indexed_at=excluded.indexed_at",
                (source, content_hash, time.time()),
            )

    @locked
    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # --- reading -----------------------------------------------------------------------------------------
    def _where(self, filters: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for key, values in normalize_filters(filters).items():
            column = f"c.{key}" if key in COLUMN_KEYS else f"json_extract(c.metadata, '$.\"{key}\"')"
            marks = ",".join("?" * len(values))
            clauses.append(f"{column} IN ({marks})")
            params.extend(int(v) if isinstance(v, bool) else v for v in values)
        return (" AND ".join(clauses) or "1"), params

    @locked
    def dense_search(
        self, query_embedding: Any, k: int, *, filters: dict[str, Any] | None = None
    ) -> list[tuple[Chunk, float]]:
        q = query_vector(query_embedding, self.dim)
        if k <= 0 or self.count() == 0:
            return []
        if filters:
            where, params = self._where(filters)
            sql = (
                f"SELECT {_COLUMNS}, vec_distance_cosine(v.embedding, ?) AS d FROM chunks c "
                f"JOIN vectors v ON v.rowid = c.id WHERE {where} ORDER BY d LIMIT ?"
            )
            rows = list(self._db.execute(sql, (q.tobytes(), *params, k)))
        else:
            sql = (
                f"SELECT {_COLUMNS}, knn.distance FROM (SELECT rowid, distance FROM vectors "
                "WHERE embedding MATCH ? AND k = ?) knn JOIN chunks c ON c.id = knn.rowid ORDER BY knn.distance"
            )
            rows = list(self._db.execute(sql, (q.tobytes(), k)))
        return [(_row_chunk(r), 1.0 - float(r[7])) for r in rows]

    @locked
    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        out: dict[str, Chunk] = {}
        for i in range(0, len(chunk_ids), 500):
            part = list(chunk_ids[i : i + 500])
            sql = f"SELECT {_COLUMNS} FROM chunks c WHERE c.chunk_id IN ({','.join('?' * len(part))})"
            for row in self._db.execute(sql, part):
                out[row[1]] = _row_chunk(row)
        return [out[c] for c in chunk_ids if c in out]

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._lock:
            rows = list(self._db.execute(f"SELECT {_COLUMNS} FROM chunks c ORDER BY c.id"))
        return (_row_chunk(r) for r in rows)

    @locked
    def count(self) -> int:
        n: Any = self._db.execute("SELECT count(*) FROM chunks").fetchall()[0][0]
        return int(n)

    @locked
    def source_hashes(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._db.execute("SELECT file, content_hash FROM sources")}

    @locked
    def get_meta(self, key: str) -> str | None:
        rows = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchall()
        return str(rows[0][0]) if rows else None

    @locked
    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"SqliteVecStore({str(self.path)!r}, dim={self.dim})"
