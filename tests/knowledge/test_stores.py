"""One battery for every Store: the embedded sqlite-vec store and PostgreSQL + pgvector (a real server)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import ConfigError, StoreError
from cadre.knowledge.protocol import Chunk, Store
from cadre.knowledge.stores import STORES

DIM = 16


@pytest.fixture(params=["sqlite-vec", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    options: dict[str, str] = {}
    if request.param == "pgvector":
        options = {"dsn": request.getfixturevalue("pg_dsn"), "table": f"t_{uuid.uuid4().hex[:10]}"}
    s = STORES.get(request.param)(tmp_path / "corpus", dim=DIM, options=options)
    yield s
    if hasattr(s, "drop"):
        s.drop()
    s.close()


def _chunks(n: int, *, file: str = "/docs/a.md", seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [
        Chunk(
            f"{file}-{i}",
            file,
            i * 10,
            i * 10 + 9,
            f"text {i}",
            {"file": file, "lang": "en" if i % 2 else "fr", "n": i},
        )
        for i in range(n)
    ]
    return chunks, vecs


def test_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_dense_search_matches_exact_cosine_ranking(store: Store) -> None:
    chunks, vecs = _chunks(60)
    store.add(chunks, vecs)
    assert store.count() == 60
    q = vecs[7] + 0.05 * vecs[3]
    q /= np.linalg.norm(q)
    hits = store.dense_search(q, 5)
    expected = np.argsort(-(vecs @ q))[:5]
    assert [c.chunk_id for c, _ in hits] == [chunks[i].chunk_id for i in expected]
    assert hits[0][1] == pytest.approx(float(vecs[7] @ q), abs=1e-4)
    got = hits[0][0]
    assert (got.source, got.start, got.end, got.text, got.metadata["n"]) == (
        "/docs/a.md",
        70,
        79,
        "text 7",
        7,
    )


def test_filters_select_before_ranking(store: Store) -> None:
    chunks, vecs = _chunks(40)
    store.add(chunks, vecs)
    hits = store.dense_search(vecs[4], 10, filters={"lang": "en"})  # chunk 4 is "fr": must not appear
    assert len(hits) == 10
    assert all(c.metadata["lang"] == "en" for c, _ in hits)
    hits = store.dense_search(vecs[4], 3, filters={"n": [4, 5, 33]})
    assert {c.metadata["n"] for c, _ in hits} == {4, 5, 33}
    assert hits[0][0].metadata["n"] == 4
    assert store.dense_search(vecs[4], 3, filters={"lang": "de"}) == []
    with pytest.raises(ConfigError):
        store.dense_search(vecs[4], 3, filters={"bad key'": 1})


def test_delete_source_and_hashes(store: Store) -> None:
    a, va = _chunks(5, file="/docs/a.md")
    b, vb = _chunks(3, file="/docs/b.md", seed=1)
    store.add(a, va)
    store.add(b, vb)
    store.set_source_hash("/docs/a.md", "h1")
    store.set_source_hash("/docs/b.md", "h2")
    store.set_source_hash("/docs/b.md", "h3")
    assert store.source_hashes() == {"/docs/a.md": "h1", "/docs/b.md": "h3"}
    assert store.delete_source("/docs/a.md") == 5
    assert store.count() == 3
    assert store.source_hashes() == {"/docs/b.md": "h3"}
    assert {c.file for c in store.iter_chunks()} == {"/docs/b.md"}
    assert all(c.file == "/docs/b.md" for c, _ in store.dense_search(va[0], 10))


def test_readding_a_chunk_id_replaces_it(store: Store) -> None:
    chunks, vecs = _chunks(3)
    store.add(chunks, vecs)
    chunks[0].text = "new text"
    store.add(chunks[:1], vecs[:1])
    assert store.count() == 3
    assert store.dense_search(vecs[0], 1)[0][0].text == "new text"


def test_meta_and_shape_checks(store: Store) -> None:
    assert store.get_meta("embedding_model") is None
    store.set_meta("embedding_model", "m1")
    store.set_meta("embedding_model", "m2")
    assert store.get_meta("embedding_model") == "m2"
    chunks, vecs = _chunks(2)
    with pytest.raises(StoreError):
        store.add(chunks, vecs[:, :8])
    with pytest.raises(StoreError):
        store.dense_search(np.zeros(8, dtype=np.float32), 3)
    assert store.dense_search(vecs[0], 3) == []


def test_sqlite_store_persists_on_disk(tmp_path: Path) -> None:
    factory = STORES.get("sqlite-vec")
    chunks, vecs = _chunks(4)
    s = factory(tmp_path, dim=DIM, options={})
    s.add(chunks, vecs)
    s.close()
    s = factory(tmp_path, dim=DIM, options={})
    assert s.count() == 4 and s.dense_search(vecs[2], 1)[0][0].chunk_id == chunks[2].chunk_id
    s.close()
    with pytest.raises(StoreError, match="option"):
        factory(tmp_path, dim=DIM, options={"file": "../escape.sqlite"})


def test_unknown_store_name_suggests_the_known_ones() -> None:
    from cadre.errors import NotFoundError

    with pytest.raises(NotFoundError, match="sqlite-vec"):
        STORES.get("sqlite-vecc")


def test_pgvector_reports_an_unreachable_server(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        STORES.get("pgvector")(tmp_path, dim=DIM, options={"dsn": "host=127.0.0.1 port=1 connect_timeout=2"})
