"""Knowledge: corpora → chunks → hybrid (BM25 + dense) retrieval → grounded prompts with citations.

Public API::

    corpus = open_corpus("handbook", create=True)     # under $CADRE_HOME/corpora/handbook
    corpus.add(["docs/", "faq.jsonl"])                # unchanged files skipped, changed ones replaced
    passages = corpus.search("how do I reset it?", k=5, filters={"format": "markdown"})
    messages, citations = ground(messages, corpus, k=4)

Heavy pieces (the embedding model, bm25s, the stores) load on first use.
"""

from __future__ import annotations

from cadre.knowledge.chunking import ChunkingConfig
from cadre.knowledge.corpus import (
    AddReport,
    Corpus,
    CorpusInfo,
    list_corpora,
    open_corpus,
    remove_corpus,
)
from cadre.knowledge.evaluation import (
    GroundednessReport,
    LabelledQuery,
    RetrievalReport,
    evaluate_retrieval,
    groundedness,
    mrr,
    recall_at_k,
)
from cadre.knowledge.grounding import cited_numbers, ground, shared_corpus
from cadre.knowledge.protocol import Chunk, Passage, Store
from cadre.knowledge.stores import STORES

__all__ = [
    "STORES",
    "AddReport",
    "Chunk",
    "ChunkingConfig",
    "Corpus",
    "CorpusInfo",
    "GroundednessReport",
    "LabelledQuery",
    "Passage",
    "RetrievalReport",
    "Store",
    "cited_numbers",
    "evaluate_retrieval",
    "ground",
    "groundedness",
    "list_corpora",
    "mrr",
    "open_corpus",
    "recall_at_k",
    "remove_corpus",
    "shared_corpus",
]
