"""What the gateway uses from the layers above it, by default: the router (``cadre.route``), grounding
(``cadre.knowledge``) and the embedding model (``cadre.runtime.embeddings``). Each is imported on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from cadre.ecosystem.routing import build_router
from cadre.ecosystem.spec import KnowledgeRef
from cadre.runtime.protocol import ChatMessage

__all__ = ["EMBEDDING_ALIASES", "EMBEDDING_MODEL", "CorpusGrounder", "build_router", "embed_texts"]

EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_ALIASES = {EMBEDDING_MODEL, "minilm", "sentence-transformers/all-MiniLM-L6-v2"}


def embed_texts(texts: list[str]) -> tuple[Any, int]:
    """Embed ``texts`` with the bundled MiniLM; returns (unit vectors, exact input token count)."""
    from cadre.runtime.embeddings import get_embedder

    embedder = get_embedder()
    vectors = embedder.encode(texts)
    tokenizer = getattr(getattr(embedder, "_model", None), "tokenizer", None)
    n_tokens = 0
    if tokenizer is not None:
        limit = embedder.max_seq_length or None
        for ids in tokenizer(texts, truncation=limit is not None, max_length=limit)["input_ids"]:
            n_tokens += len(ids)
    return vectors, n_tokens


class CorpusGrounder:
    """Grounds chats in knowledge corpora (``cadre.knowledge.ground``), keeping each opened corpus."""

    def __init__(self) -> None:
        self._corpora: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(
        self, ref: KnowledgeRef, messages: Sequence[ChatMessage]
    ) -> tuple[list[ChatMessage], list[dict[str, Any]]]:
        from cadre.knowledge import ground, open_corpus

        with self._lock:
            corpus = self._corpora.get(ref.corpus)
            if corpus is None:
                corpus = self._corpora[ref.corpus] = open_corpus(ref.corpus)
            out, citations = ground(list(messages), corpus, k=ref.top_k)
        return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in out], citations
