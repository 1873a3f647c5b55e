"""A corpus: a directory with a manifest, a store of embedded chunks, and a hybrid (BM25 + dense) retriever.

Layout: ``<cadre_home>/corpora/<name>/corpus.json`` (or any directory given as a path) holds the manifest:
the embedding model the vectors were made with, the store backend and its options, and the chunking
settings. The embedding model id is also written into the store, so a query embedded by another model is
refused instead of silently returning neighbours from an unrelated vector space.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field

from cadre.config.base import StrictModel, parse_spec
from cadre.errors import ConfigError, NotFoundError, StoreError
from cadre.knowledge.chunking import ChunkingConfig, chunk_document
from cadre.knowledge.filters import normalize_filters
from cadre.knowledge.ingest import IngestError, content_hash, expand_paths, read_documents
from cadre.knowledge.protocol import Chunk, Passage, Store
from cadre.knowledge.retrieval import BM25Index, reciprocal_rank_fusion
from cadre.knowledge.stores import DEFAULT_STORE, STORES
from cadre.paths import cadre_home, safe_name

__all__ = [
    "AddReport",
    "Corpus",
    "CorpusInfo",
    "CorpusManifest",
    "SearchMode",
    "StoreSpec",
    "TextEmbedder",
    "corpus_dir",
    "list_corpora",
    "open_corpus",
    "remove_corpus",
]

SearchMode = Literal["hybrid", "dense", "bm25"]
MANIFEST = "corpus.json"
_EMBED_BATCH = 128


class TextEmbedder(Protocol):
    """What a corpus needs from an embedding model (``cadre.runtime.embeddings.Embedder`` is one)."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class StoreSpec(StrictModel):
    backend: str = DEFAULT_STORE
    options: dict[str, Any] = Field(default_factory=dict)


class CorpusManifest(StrictModel):
    """``corpus.json``: what a corpus was built with."""

    format_version: int = 1
    name: str
    embedder: str  # what to load: a bundled name or a sentence-transformers folder
    embedding_model: str  # the model's stable id, checked on every query
    dim: int
    store: StoreSpec = StoreSpec()
    chunking: ChunkingConfig = ChunkingConfig()
    created_at: float = 0.0


@dataclass
class AddReport:
    """What one ``Corpus.add`` did."""

    indexed: list[str] = field(default_factory=list)  # new files
    replaced: list[str] = field(default_factory=list)  # changed files whose old chunks were replaced
    unchanged: list[str] = field(default_factory=list)  # skipped: same content hash as when indexed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): reported and skipped
    warnings: list[str] = field(default_factory=list)  # parts of files skipped (bad JSONL lines, ...)
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0


@dataclass
class CorpusInfo:
    name: str
    path: str
    store: str
    embedding_model: str
    chunks: int
    files: int
    chunking: dict[str, int]
    created_at: float


def corpus_dir(name_or_path: str | Path) -> Path:
    """Where a corpus lives: a plain name is under ``cadre_home()/corpora``; anything path-like is used as is."""
    raw = str(name_or_path)
    if isinstance(name_or_path, Path) or os.sep in raw or "/" in raw or raw.startswith((".", "~")):
        return Path(raw).expanduser().resolve()
    return cadre_home() / "corpora" / safe_name(raw, kind="corpus")


def _index_text(chunk: Chunk) -> str:
    """What is embedded and BM25-indexed: the chunk with its document title and section path in front."""
    head = [str(chunk.metadata[k]) for k in ("title", "section") if chunk.metadata.get(k)]
    return "\n".join([*head, chunk.text])


class Corpus:
    """An opened corpus. Use :func:`open_corpus` rather than constructing one."""

    def __init__(self, path: Path, manifest: CorpusManifest, *, embedder: TextEmbedder | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self._embedder = embedder
        self._store: Store | None = None
        self._bm25: BM25Index | None = None
        self._bm25_generation: str | None = None
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            from cadre.runtime.embeddings import get_embedder

            self._embedder = get_embedder(self.manifest.embedder)
            self._check_embedder(self._embedder)
        return self._embedder

    def _check_embedder(self, embedder: TextEmbedder) -> None:
        if embedder.model_id != self.manifest.embedding_model:
            raise StoreError(
                f"corpus {self.name!r} was built with embedding model {self.manifest.embedding_model!r}, but the "
                f"query embedder is {embedder.model_id!r}; query with that model or rebuild the corpus "
                f"(`cadre index remove {self.name}` then `cadre index add {self.name} PATH...`)"
            )

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                factory = STORES.get(self.manifest.store.backend)
                store = factory(self.path, dim=self.manifest.dim, options=self.manifest.store.options)
                recorded = store.get_meta("embedding_model")
                if recorded is None:
                    store.set_meta("embedding_model", self.manifest.embedding_model)
                elif recorded != self.manifest.embedding_model:
                    store.close()
                    raise StoreError(
                        f"the {self.manifest.store.backend} store of corpus {self.name!r} holds vectors of "
                        f"{recorded!r}, not {self.manifest.embedding_model!r} as corpus.json says; give the "
                        "corpus its own table or rebuild it"
                    )
                self._store = store
            return self._store

    # --- ingestion ---------------------------------------------------------------------------------------
    def add(
        self,
        paths: Iterable[str | Path],
        *,
        text_field: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> AddReport:
        """Index files (directories are walked); unchanged files are skipped, changed ones replaced.

        Args:
            paths: files or directories (.txt, .md, .html, .pdf, .jsonl).
            text_field: for JSONL, the field that holds the text (default: text/content/body/...).
            on_progress: called with (chunks embedded so far, chunks to embed) after each batch.

        Returns:
            An :class:`AddReport`; unreadable files are in ``failed`` and the rest is indexed.
        """
        t0 = time.perf_counter()
        report = AddReport()
        files, problems = expand_paths(paths)
        report.failed.extend(problems)
        known = self.store.source_hashes()
        pending: list[tuple[str, str, list[Chunk]]] = []  # (file, hash, chunks) in order
        for f in files:
            source = str(f)
            try:
                data = f.read_bytes()
            except OSError as err:
                report.failed.append((source, f"cannot read: {err.strerror or err}"))
                continue
            digest = content_hash(data)
            if known.get(source) == digest:
                report.unchanged.append(source)
                continue
            try:
                docs, warnings = read_documents(f, data, text_field=text_field)
            except IngestError as err:
                report.failed.append((source, str(err).removeprefix(f"{source}: ")))
                continue
            report.warnings.extend(warnings)
            chunks = [c for d in docs for c in chunk_document(d, self.manifest.chunking)]
            if not chunks:
                report.failed.append(
                    (source, "no text to index (empty, or a scanned PDF without a text layer)")
                )
                continue
            (report.replaced if source in known else report.indexed).append(source)
            pending.append((source, digest, chunks))

        total = sum(len(c) for _, _, c in pending)
        done = 0
        if on_progress:
            on_progress(0, total)
        for source, digest, chunks in pending:
            vectors = []
            for i in range(0, len(chunks), _EMBED_BATCH):
                batch = chunks[i : i + _EMBED_BATCH]
                vectors.append(self._encode([_index_text(c) for c in batch]))
                done += len(batch)
                if on_progress:
                    on_progress(done, total)
            with self._lock:
                report.chunks_removed += self.store.delete_source(source)
                self.store.add(chunks, np.concatenate(vectors))
                self.store.set_source_hash(source, digest)  # last: an interrupted add redoes this file
                report.chunks_added += len(chunks)
                self._bump_generation()
        report.seconds = time.perf_counter() - t0
        return report

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        vecs = np.asarray(self.embedder.encode(list(texts)), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != self.manifest.dim:
            raise StoreError(
                f"the embedder returned vectors of shape {vecs.shape}; corpus {self.name!r} stores {self.manifest.dim}"
            )
        return vecs

    def _bump_generation(self) -> None:
        self.store.set_meta("generation", f"{time.time_ns()}-{os.getpid()}")

    def remove_source(self, source: str | Path) -> int:
        """Delete one file's chunks (give the path as it was added); returns how many chunks went."""
        key = str(source)
        if key not in self.store.source_hashes():
            key = str(Path(source).expanduser().resolve())
        with self._lock:
            removed = self.store.delete_source(key)
            if removed:
                self._bump_generation()
        return removed

    # --- retrieval ---------------------------------------------------------------------------------------
    def _bm25_index(self) -> BM25Index:
        with self._lock:
            generation = self.store.get_meta("generation")
            if self._bm25 is None or generation != self._bm25_generation:
                chunks = list(self.store.iter_chunks())
                self._bm25 = BM25Index(chunks, [_index_text(c) for c in chunks])
                self._bm25_generation = generation
            return self._bm25

    def search(
        self,
        query: str,
        k: int = 5,
        filters: Mapping[str, Any] | None = None,
        *,
        mode: SearchMode = "hybrid",
        depth: int | None = None,
    ) -> list[Passage]:
        """The ``k`` best passages for ``query``.

        Args:
            query: the question or search text.
            k: how many passages to return.
            filters: metadata filters (``{"format": "pdf"}``, ``{"source": [...]}``): every key must match.
            mode: ``hybrid`` (BM25 and dense fused by reciprocal rank), ``dense`` or ``bm25``.
            depth: how many candidates each ranker contributes before fusion (default ``max(50, 5k)``).

        Raises:
            StoreError: the corpus is empty, or was built with another embedding model.
            ConfigError: bad ``k``, ``mode`` or filters.
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if mode not in ("hybrid", "dense", "bm25"):
            raise ConfigError(f"unknown search mode {mode!r}: use hybrid, dense or bm25")
        if not query.strip():
            raise ConfigError("the query is empty: give some text to search for")
        norm = normalize_filters(filters)
        if self.store.count() == 0:
            raise StoreError(
                f"corpus {self.name!r} is empty; add documents with `cadre index add {self.name} PATH...`"
            )
        n = depth or max(50, 5 * k)
        dense: list[tuple[Chunk, float]] = []
        lexical: list[tuple[Chunk, float]] = []
        if mode in ("hybrid", "dense"):
            q = self._encode([query])[0]
            dense = self.store.dense_search(q, k if mode == "dense" else n, filters=dict(norm) or None)
        if mode in ("hybrid", "bm25"):
            lexical = self._bm25_index().search(query, k if mode == "bm25" else n, filters=norm or None)
        if mode == "dense":
            return [Passage(c, s) for c, s in dense]
        if mode == "bm25":
            return [Passage(c, s) for c, s in lexical]
        by_id = {c.chunk_id: c for c, _ in [*lexical, *dense]}
        fused = reciprocal_rank_fusion([[c.chunk_id for c, _ in dense], [c.chunk_id for c, _ in lexical]])
        return [Passage(by_id[cid], score) for cid, score in fused[:k]]

    # --- bookkeeping -------------------------------------------------------------------------------------
    def info(self) -> CorpusInfo:
        return CorpusInfo(
            name=self.name,
            path=str(self.path),
            store=self.manifest.store.backend,
            embedding_model=self.manifest.embedding_model,
            chunks=self.store.count(),
            files=len(self.store.source_hashes()),
            chunking=self.manifest.chunking.model_dump(),
            created_at=self.manifest.created_at,
        )

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._bm25 = None

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, path={str(self.path)!r}, store={self.manifest.store.backend!r})"


def _read_manifest(path: Path) -> CorpusManifest:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StoreError(
            f"{path / MANIFEST} is unreadable ({err}); remove the corpus and index it again"
        ) from None
    return parse_spec(CorpusManifest, data, source=str(path / MANIFEST))


def open_corpus(
    name_or_path: str | Path,
    *,
    create: bool = False,
    store: str | None = None,
    store_options: Mapping[str, Any] | None = None,
    embedder: TextEmbedder | str | None = None,
    chunking: ChunkingConfig | None = None,
) -> Corpus:
    """Open a corpus by name (under ``cadre_home()/corpora``) or directory path.

    Args:
        name_or_path: a plain corpus name or a directory path.
        create: make the corpus if it does not exist (``store``, ``store_options``, ``chunking`` apply then).
        store: store backend for a new corpus (``sqlite-vec`` default, ``pgvector``).
        store_options: backend options (pgvector: ``dsn``, ``table``).
        embedder: an embedder object or a bundled/local model name; default ``all-minilm-l6-v2``. For an
            existing corpus it must be the model the corpus was built with.
        chunking: chunk size and overlap for a new corpus.

    Raises:
        NotFoundError: the corpus does not exist and ``create`` is false.
        StoreError: the embedder differs from the corpus's model.
    """
    path = corpus_dir(name_or_path)
    emb_obj: TextEmbedder | None = None
    emb_name = "all-minilm-l6-v2"
    if isinstance(embedder, str):
        emb_name = embedder
    elif embedder is not None:
        emb_obj = embedder
        emb_name = _loadable_name(embedder)
    if (path / MANIFEST).is_file():
        manifest = _read_manifest(path)
        if store and store != manifest.store.backend:
            raise StoreError(
                f"corpus {manifest.name!r} uses the {manifest.store.backend} store, not {store}; drop --store or "
                "index into a new corpus"
            )
        corpus = Corpus(path, manifest, embedder=emb_obj)
        if emb_obj is not None:
            corpus._check_embedder(emb_obj)
        elif isinstance(embedder, str):
            loaded = _load_embedder(embedder)
            corpus._check_embedder(loaded)
            corpus._embedder = loaded
        return corpus
    if not create:
        raise NotFoundError(
            f"corpus {str(name_or_path)!r} does not exist (looked in {path}); create it with "
            f"`cadre index add {name_or_path} PATH...`"
        )
    backend = store or DEFAULT_STORE
    if backend not in STORES:
        raise ConfigError(f"unknown store {backend!r}; known: {', '.join(STORES.names())}")
    if emb_obj is None:
        emb_obj = _load_embedder(emb_name)
    manifest = CorpusManifest(
        name=path.name,
        embedder=emb_name,
        embedding_model=emb_obj.model_id,
        dim=int(emb_obj.dim),
        store=StoreSpec(backend=backend, options=dict(store_options or {})),
        chunking=chunking or ChunkingConfig(),
        created_at=time.time(),
    )
    path.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(path, manifest, embedder=emb_obj)
    _ = corpus.store  # fail before writing the manifest if the store cannot be opened
    tmp = path / (MANIFEST + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path / MANIFEST)
    return corpus


# The bundled default's stable model id -> the name ``get_embedder`` loads it by.
_BUNDLED_IDS = {"sentence-transformers/all-MiniLM-L6-v2": "all-minilm-l6-v2"}


def _loadable_name(embedder: TextEmbedder) -> str:
    """What to record so a later process can load the same model (a local model's id is its folder path)."""
    return str(getattr(embedder, "name", None) or _BUNDLED_IDS.get(embedder.model_id, embedder.model_id))


def _load_embedder(name: str) -> TextEmbedder:
    from cadre.runtime.embeddings import get_embedder

    return get_embedder(name)


def list_corpora(root: Path | None = None) -> list[CorpusInfo]:
    """Every corpus under ``cadre_home()/corpora`` (or ``root``), with its size."""
    base = root or cadre_home() / "corpora"
    out = []
    for manifest in sorted(base.glob(f"*/{MANIFEST}")) if base.is_dir() else []:
        corpus = Corpus(manifest.parent, _read_manifest(manifest.parent))
        try:
            out.append(corpus.info())
        finally:
            corpus.close()
    return out


def remove_corpus(name_or_path: str | Path) -> CorpusInfo:
    """Delete a corpus: its directory and, for a server store, its tables."""
    corpus = open_corpus(name_or_path)
    info = corpus.info()
    drop = getattr(corpus.store, "drop", None)
    if callable(drop):
        drop()
    corpus.close()
    if not (corpus.path / MANIFEST).is_file():  # never delete a directory that is not a corpus
        raise StoreError(f"{corpus.path} has no {MANIFEST}; not removing it")
    shutil.rmtree(corpus.path)
    return info
