"""What the gateway uses from the layers above it, by default: the router (``cadre.route``), grounding
(``cadre.knowledge``) and the embedding model (``cadre.runtime.embeddings``). Each is imported on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from cadre.config.ecosystem import EcosystemSpec, KnowledgeRef
from cadre.route.protocol import Router
from cadre.runtime.protocol import ChatMessage

__all__ = ["CorpusGrounder", "build_router", "embed_texts"]


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


def build_router(spec: EcosystemSpec) -> tuple[Router | None, str]:
    """The router of ``spec``: loaded from ``router.path``, else fitted from the specialists' examples.

    Returns (None, why) when there is nothing to build a router from.
    """
    import cadre.route as route

    if spec.router.path:
        path = spec.resolve(spec.router.path)
        return route.load_router(path), f"loaded from {path}"  # type: ignore[attr-defined]
    with_examples = [s for s in spec.specialists if s.examples]
    if not with_examples:
        return None, "no specialist has examples"
    from cadre.route.config import RouterSpec as RouteBuildSpec
    from cadre.route.data import Example

    examples = [Example(text=t, route=s.name) for s in with_examples for t in s.examples]
    examples += [Example(text=t, route=None) for t in spec.router.out_of_scope]
    build = RouteBuildSpec.model_validate(spec.router.build)
    router = route.fit_router(examples, spec=build)  # type: ignore[attr-defined]
    return router, f"fitted at start-up on {len(examples)} examples"


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
