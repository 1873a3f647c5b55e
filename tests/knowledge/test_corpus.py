from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import ConfigError, NotFoundError, StoreError
from cadre.knowledge import ChunkingConfig, list_corpora, open_corpus, remove_corpus
from cadre.knowledge.retrieval import reciprocal_rank_fusion

from .conftest import encrypt_pdf, write_pdf
from .fictional import write_corpus


def _build(root: Path, embedder, name: str | Path):  # type: ignore[no-untyped-def]
    docs = write_corpus(root / "docs")
    c = open_corpus(
        name, create=True, embedder=embedder, chunking=ChunkingConfig(max_chars=400, overlap_chars=60)
    )
    report = c.add([docs])
    assert not report.failed, report.failed
    return c


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    """A read-only corpus shared by the tests that only search it."""
    root = tmp_path_factory.mktemp("shared")
    c = _build(root, embedder, root / "fiction")
    yield c
    c.close()


@pytest.fixture
def corpus(tmp_path: Path, embedder):  # type: ignore[no-untyped-def]
    """A corpus of one's own (by name, under $CADRE_HOME) for tests that change it."""
    c = _build(tmp_path, embedder, "fiction")
    yield c
    c.close()


def test_add_indexes_every_format_and_records_the_model(shared) -> None:  # type: ignore[no-untyped-def]
    formats = {c.metadata["format"] for c in shared.store.iter_chunks()}
    assert formats == {"markdown", "html", "text", "pdf", "jsonl"}
    info = shared.info()
    assert info.files == 5 and info.chunks == shared.store.count() > 5
    assert info.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert shared.store.get_meta("embedding_model") == info.embedding_model


def test_unchanged_files_are_skipped_and_changed_ones_replaced(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    before = corpus.store.count()
    again = corpus.add([docs])
    assert len(again.unchanged) == 5 and again.chunks_added == 0 and corpus.store.count() == before

    (docs / "varn.txt").write_text(
        "The Varn engine was retired in the year 2201 and replaced by the Sollis drive.\n"
    )
    report = corpus.add([docs])
    assert report.replaced == [str(docs / "varn.txt")] and len(report.unchanged) == 4
    assert report.chunks_removed >= 1 and report.chunks_added == 1
    texts = [c.text for c in corpus.store.iter_chunks() if c.file.endswith("varn.txt")]
    assert texts == ["The Varn engine was retired in the year 2201 and replaced by the Sollis drive."]
    top = corpus.search("When was the Varn engine retired?", k=1)[0]
    assert "2201" in top.chunk.text
    assert all("440" not in p.chunk.text for p in corpus.search("Varn engine idle revolutions", k=10))


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "good.md").write_text("# Good\n\nThe Quillon river is brown.\n")
    (d / "latin1.txt").write_bytes("Ceci n'est pas de l'UTF-8: café".encode("latin-1"))
    plain = write_pdf(tmp_path / "plain.pdf", [["The vault code is 8812."]])
    encrypt_pdf(plain, d / "locked.pdf", "hunter2")
    (d / "empty.md").write_text("\n\n")
    c = open_corpus(tmp_path / "c", create=True, embedder=embedder)
    report = c.add([d, tmp_path / "nope.txt"])
    failed = {Path(p).name: why for p, why in report.failed}
    assert set(failed) == {"latin1.txt", "locked.pdf", "empty.md", "nope.txt"}
    assert "encrypted" in failed["locked.pdf"] and "UTF-8" in failed["latin1.txt"]
    assert report.indexed == [str(d / "good.md")]
    assert "Quillon" in c.search("colour of the Quillon river", k=1)[0].chunk.text
    c.close()


def test_empty_corpus_and_bad_queries_are_clear_errors(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    c = open_corpus("empty", create=True, embedder=embedder)
    with pytest.raises(StoreError, match="empty"):
        c.search("anything")
    with pytest.raises(ConfigError):
        c.search("   ")
    with pytest.raises(ConfigError):
        c.search("x", k=0)
    with pytest.raises(NotFoundError, match="cadre index add"):
        open_corpus("never-made")
    with pytest.raises(ConfigError):
        open_corpus("bad name!")


class _OtherModel:
    """Another real embedding function (fixed random projection of byte counts) with its own model id."""

    model_id = "test/byte-projection-384"
    dim = 384

    def encode(self, texts):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(0)
        proj = rng.normal(size=(256, self.dim))
        counts = np.array(
            [np.bincount(np.frombuffer(t.encode(), np.uint8), minlength=256) for t in texts], float
        )
        out = counts @ proj
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_querying_with_another_embedding_model_is_refused(shared) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError, match=r"all-MiniLM-L6-v2.*byte-projection"):
        open_corpus(shared.path, embedder=_OtherModel())


def test_a_store_holding_another_models_vectors_is_refused(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    other = open_corpus(tmp_path / "shared", create=True, embedder=_OtherModel())
    other.add([write_corpus(tmp_path / "d")])
    other.close()
    manifest = tmp_path / "shared" / "corpus.json"
    manifest.write_text(manifest.read_text().replace("test/byte-projection-384", embedder.model_id))
    with pytest.raises(StoreError, match=r"holds vectors of 'test/byte-projection-384'"):
        _ = open_corpus(tmp_path / "shared", embedder=embedder).store


def test_search_modes_and_filters(shared) -> None:  # type: ignore[no-untyped-def]
    corpus = shared
    q = "How many scrolls are in the Pellucid Library?"
    for mode in ("hybrid", "dense", "bm25"):
        top = corpus.search(q, k=3, mode=mode)
        assert "12,006" in top[0].chunk.text, mode
        assert len(top) <= 3
    only_pdf = corpus.search(q, k=5, filters={"format": "pdf"})
    assert only_pdf and all(p.chunk.metadata["format"] == "pdf" for p in only_pdf)
    weather = corpus.search("scrolls library", k=5, filters={"topic": ["weather", "games"]})
    assert {p.chunk.metadata["topic"] for p in weather} <= {"weather", "games"}
    with pytest.raises(ConfigError):
        corpus.search(q, mode="fuzzy")  # type: ignore[arg-type]


def test_remove_source_and_remove_corpus(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n = corpus.remove_source(tmp_path / "docs" / "facts.jsonl")
    assert n == 3
    assert all("12,006" not in p.chunk.text for p in corpus.search("Pellucid Library scrolls", k=10))
    corpus.close()
    assert [i.name for i in list_corpora()] == ["fiction"]
    info = remove_corpus("fiction")
    assert info.name == "fiction" and not (Path(os.environ["CADRE_HOME"]) / "corpora" / "fiction").exists()


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])
    assert [x for x, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_pgvector_corpus_end_to_end(tmp_path: Path, embedder, pg_dsn: str) -> None:  # type: ignore[no-untyped-def]
    docs = write_corpus(tmp_path / "docs")
    c = open_corpus(
        "pgfiction", create=True, embedder=embedder, store="pgvector", store_options={"dsn": pg_dsn}
    )
    assert c.add([docs]).chunks_added > 5
    assert c.add([docs]).chunks_added == 0
    top = c.search("Who commands the Zorblax station?", k=2)
    assert "Ilvane Mortescu" in top[0].chunk.text
    assert c.search("honey flavour", k=3, filters={"format": "pdf"})[0].chunk.metadata["page"] == 2
    c.close()
    remove_corpus("pgfiction")


def test_concurrent_searches_and_an_add_share_one_corpus(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    extra = tmp_path / "extra.md"
    extra.write_text("# Extra\n\nThe Sollis drive hums at the pitch of a low C.\n")
    questions = ["Who commands the Zorblax station?", "How long is the Glimmerfen bridge?"] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        adding = pool.submit(corpus.add, [extra])
        results = list(pool.map(lambda q: corpus.search(q, k=1)[0].chunk.text, questions))
        assert adding.result().indexed == [str(extra)]
    assert all(("Mortescu" in r) if "Zorblax" in q else ("413" in r) for q, r in zip(questions, results))
    assert "Sollis" in corpus.search("What pitch does the Sollis drive hum at?", k=1)[0].chunk.text


def test_shared_corpus_is_opened_once(corpus) -> None:  # type: ignore[no-untyped-def]
    from cadre.knowledge import shared_corpus

    first = shared_corpus("fiction")
    assert shared_corpus(corpus.path) is first
    assert first.search("Pellucid Library", k=1)[0].chunk.metadata["record_id"] == "fact-001"
    first.close()
