from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cadre.traffic.backends import TABLES
from cadre.traffic.location import PostgresLocation, is_postgres, parse_location


def disk_bytes(db: Path) -> bytes:
    """Everything SQLite keeps on disk for ``db``: the file, its WAL and its shared-memory index."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(f"{db}{suffix}")
        if p.exists():
            out += p.read_bytes()
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``make_store(name)``: where a new store named ``name`` goes, on each backend: a SQLite file, or a
    PostgreSQL URL with a table prefix of its own (one throwaway server for the session)."""
    if request.param == "sqlite":
        return lambda name: str(tmp_path / f"{name}.db")
    url = request.getfixturevalue("pg_store_url")
    tag = uuid.uuid4().hex[:8]
    return lambda name: str(url(f"t{tag}_{name}_"))


def stored_text(store: str | Path) -> bytes:
    """Everything a store holds, for a leak check: SQLite's files byte by byte (deleted pages included); in
    PostgreSQL, every value of every text column of every table of the store."""
    if not is_postgres(store):
        return disk_bytes(Path(store))
    import psycopg

    loc = parse_location(store)
    assert isinstance(loc, PostgresLocation)
    with psycopg.connect(loc.dsn) as con:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND starts_with(table_name, %s)",
                (loc.table_prefix,),
            )
        }
        assert tables >= {loc.table_prefix + t for t in TABLES}, tables
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND starts_with(table_name, %s) AND data_type IN ('text', 'character varying', 'json', 'jsonb')",
            (loc.table_prefix,),
        ).fetchall()
        assert len(columns) >= 20, columns  # requests 10, shadow 6, feedback 4
        values = [
            str(v)
            for table, column in columns
            for (v,) in con.execute(f'SELECT "{column}" FROM "{table}"')  # type: ignore[arg-type]
            if v is not None
        ]
    return "\n".join(values).encode()


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
