"""Evaluation hooks for ``cadre eval``: retrieval quality against labelled passages, and answer groundedness.

Retrieval: recall@k (the share of a query's relevant items found in its top k, averaged over queries) and
MRR (mean of 1 / rank of the first relevant item; 0 when none is retrieved), Voorhees, TREC-8 QA (1999).
A relevant item is named by chunk id, source, or ingested file, so labels survive re-chunking when given
as sources.

Groundedness: an answer is split into sentences; a sentence is supported when its content words are
mostly found in the passages it cites (or in all given passages when it cites none) and every number in it
appears there, or when it is semantically close to one cited passage sentence (cosine of MiniLM
embeddings). This is a lexical/embedding check, not an entailment model: it catches invented facts and
numbers, and can miss paraphrased contradictions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cadre.errors import ConfigError
from cadre.knowledge.grounding import cited_numbers
from cadre.knowledge.protocol import Chunk, Passage

__all__ = [
    "GroundednessReport",
    "LabelledQuery",
    "RetrievalReport",
    "SentenceSupport",
    "evaluate_retrieval",
    "groundedness",
    "mrr",
    "recall_at_k",
]

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "not",
        "no",
        "do",
        "does",
        "did",
        "done",
        "has",
        "have",
        "had",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
        "must",
        "shall",
        "than",
        "then",
        "so",
        "such",
        "also",
        "into",
        "about",
        "over",
        "under",
        "which",
        "who",
        "whom",
        "what",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "each",
        "some",
        "more",
        "most",
        "other",
        "very",
        "only",
        "own",
        "same",
        "too",
        "just",
    ]
)


@dataclass
class LabelledQuery:
    """A question and the chunk ids / sources / files that answer it."""

    query: str
    relevant: set[str]


@dataclass
class RetrievalReport:
    k: int
    n_queries: int
    recall_at_k: float
    mrr: float
    per_query: list[dict[str, float]] = field(default_factory=list)


def _keys(chunk: Chunk) -> set[str]:
    return {chunk.chunk_id, chunk.source, chunk.file}


def _first_hit(ranked: Sequence[set[str]], relevant: set[str]) -> int | None:
    return next((i for i, keys in enumerate(ranked, start=1) if keys & relevant), None)


def recall_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Mean over queries of |relevant ∩ top-k| / |relevant| (ids as strings)."""
    if len(ranked) != len(relevant):
        raise ConfigError(f"{len(ranked)} rankings but {len(relevant)} relevance sets")
    if not ranked:
        return 0.0
    scores = [len(set(r[:k]) & rel) / len(rel) if rel else 0.0 for r, rel in zip(ranked, relevant)]
    return float(np.mean(scores))


def mrr(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]]) -> float:
    """Mean reciprocal rank of the first relevant id (0 for a query with none retrieved)."""
    if not ranked:
        return 0.0
    rr = []
    for r, rel in zip(ranked, relevant):
        hit = next((i for i, x in enumerate(r, start=1) if x in rel), None)
        rr.append(1.0 / hit if hit else 0.0)
    return float(np.mean(rr))


def evaluate_retrieval(
    search: Callable[[str, int], Sequence[Passage]], queries: Sequence[LabelledQuery], *, k: int = 5
) -> RetrievalReport:
    """Run ``search(query, k)`` (e.g. ``corpus.search``) on labelled queries; recall@k and MRR@k.

    Each retrieved passage counts once for each label it matches (its chunk id, source or file); recall is
    over distinct labels found, so a document split in three chunks is found once.
    """
    if not queries:
        raise ConfigError("no labelled queries to evaluate")
    recalls, rrs, per_query = [], [], []
    for q in queries:
        if not q.relevant:
            raise ConfigError(f"query {q.query[:60]!r} has no relevant items")
        keys = [_keys(p.chunk) for p in search(q.query, k)][:k]
        found = set().union(*keys) & q.relevant if keys else set()
        hit = _first_hit(keys, q.relevant)
        recalls.append(len(found) / len(q.relevant))
        rrs.append(1.0 / hit if hit else 0.0)
        per_query.append({"recall": recalls[-1], "reciprocal_rank": rrs[-1]})
    return RetrievalReport(k, len(queries), float(np.mean(recalls)), float(np.mean(rrs)), per_query)


@dataclass
class SentenceSupport:
    sentence: str
    supported: bool
    coverage: float  # share of its content words found in the cited passages
    similarity: float  # best cosine to a cited passage sentence (0 without an embedder)
    missing: list[str]  # content words and numbers not found


@dataclass
class GroundednessReport:
    score: float  # share of answer sentences that are supported
    cited: list[int]  # passage numbers the answer cites
    invalid_citations: list[int]  # cited numbers with no such passage
    sentences: list[SentenceSupport]

    @property
    def grounded(self) -> bool:
        return self.score == 1.0 and not self.invalid_citations


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+(?:[.,][0-9]+)*", text.lower()) if w not in _STOP]


def _sentences(text: str) -> list[str]:
    text = re.sub(r"\[\d+(?:\s*[,;]\s*\d+)*\]", " ", text)
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [p for p in parts if _words(p)]


def groundedness(
    answer: str,
    passages: Sequence[Passage | Chunk | str],
    *,
    embedder: object | None = None,
    min_coverage: float = 0.7,
    min_similarity: float = 0.75,
) -> GroundednessReport:
    """Is each sentence of ``answer`` supported by the passages it cites? (See the module docstring.)

    Args:
        answer: the model's answer, citing passages as ``[n]`` (1-based, as :func:`ground` numbers them).
        passages: the passages that were in the prompt, in prompt order.
        embedder: optional object with ``encode(texts)`` (unit rows) for the semantic check.
        min_coverage: share of a sentence's content words that must appear in the cited text.
        min_similarity: cosine above which a sentence counts as supported whatever its wording.
    """
    texts = [
        p.chunk.text if isinstance(p, Passage) else p.text if isinstance(p, Chunk) else str(p)
        for p in passages
    ]
    cited = cited_numbers(answer)
    invalid = [n for n in cited if not 1 <= n <= len(texts)]
    chosen = [texts[n - 1] for n in cited if 1 <= n <= len(texts)] or (texts if not cited else [])
    evidence = " ".join(chosen)
    vocab = set(_words(evidence))
    sents = _sentences(answer)
    sims = np.zeros(len(sents))
    if embedder is not None and sents and evidence:
        ev_sents = _sentences(evidence) or [evidence]
        a = np.asarray(embedder.encode(sents))  # type: ignore[attr-defined]
        b = np.asarray(embedder.encode(ev_sents))  # type: ignore[attr-defined]
        sims = (a @ b.T).max(axis=1)
    out = []
    for i, sentence in enumerate(sents):
        words = _words(sentence)
        missing = [w for w in words if w not in vocab]
        coverage = 1 - len(missing) / len(words)
        bad_number = any(any(ch.isdigit() for ch in w) for w in missing)
        supported = (
            bool(evidence) and not bad_number and bool(coverage >= min_coverage or sims[i] >= min_similarity)
        )
        out.append(SentenceSupport(sentence, supported, coverage, float(sims[i]), missing))
    score = float(sum(s.supported for s in out) / len(out)) if out else 0.0
    return GroundednessReport(score, cited, invalid, out)
