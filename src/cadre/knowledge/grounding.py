"""Grounding: put retrieved passages into a specialist's prompt, and say which passages an answer used.

``ground`` is what the server calls for a specialist whose spec names a corpus: it retrieves with the last
user message as the query, adds a system message that lists the passages as ``[1] ... [k]`` and asks the
model to cite them by number, and returns the citations (chunk id, source, character offsets, score) for
the response's extra field.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadre.errors import ConfigError
from cadre.knowledge.corpus import Corpus, corpus_dir, open_corpus
from cadre.knowledge.protocol import Passage

__all__ = ["GROUNDING_INSTRUCTIONS", "cited_numbers", "format_context", "ground", "shared_corpus"]

GROUNDING_INSTRUCTIONS = (
    "Answer using only the numbered passages below. After each fact, cite the passage it comes from by its "
    "number in square brackets, like [1]. If the passages do not contain the answer, say that you do not know."
)


_OPEN: dict[Path, Corpus] = {}
_OPEN_LOCK = threading.Lock()


def shared_corpus(name_or_path: str | Path) -> Corpus:
    """An opened corpus shared by every caller in this process (the server grounds many requests with one).

    Its BM25 index is built once and rebuilt only when the corpus changes (another ``add`` bumps its generation).
    """
    path = corpus_dir(name_or_path)
    with _OPEN_LOCK:
        if path not in _OPEN:
            _OPEN[path] = open_corpus(path)
        return _OPEN[path]


def format_context(passages: Sequence[Passage], *, max_chars: int | None = None) -> str:
    """The context block: the instructions, then ``[n] (source › section) text`` for each passage."""
    lines = [GROUNDING_INSTRUCTIONS, ""]
    used = 0
    for i, p in enumerate(passages, start=1):
        where = Path(p.chunk.source.split("#", 1)[0]).name
        if "#" in p.chunk.source:
            where += "#" + p.chunk.source.split("#", 1)[1]
        section = p.chunk.metadata.get("section")
        label = f"{where} › {section}" if section else where
        text = " ".join(p.chunk.text.split())
        if max_chars is not None and used + len(text) > max_chars:
            text = text[: max(0, max_chars - used)]
        used += len(text)
        lines.append(f"[{i}] ({label}) {text}")
    return "\n".join(lines)


def cited_numbers(answer: str) -> list[int]:
    """The passage numbers an answer cites (``[1]``, ``[2, 3]``, ``[1][4]``), in order of first use."""
    seen: dict[int, None] = {}
    for group in re.findall(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]", answer):
        for n in re.split(r"\s*[,;]\s*", group):
            seen.setdefault(int(n), None)
    return list(seen)


def ground(
    messages: Sequence[Mapping[str, Any]],
    corpus: Corpus | str | Path,
    k: int = 4,
    *,
    query: str | None = None,
    filters: Mapping[str, Any] | None = None,
    max_context_chars: int | None = 6000,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inject the ``k`` passages most relevant to the conversation into its system prompt.

    Args:
        messages: OpenAI-style chat messages (``role``/``content``); not modified.
        corpus: an open :class:`Corpus`, or a corpus name/path (opened once per process: :func:`shared_corpus`).
        k: how many passages to inject.
        query: what to retrieve for (default: the last user message).
        filters: metadata filters passed to the search.
        max_context_chars: cap on the injected passage text (small models have small contexts).

    Returns:
        ``(messages_with_context, citations)``: the new message list (the context is appended to the first
        system message, or added as one), and one citation per passage, numbered as in the prompt:
        ``{"index", "chunk_id", "source", "start", "end", "score", "section"?, "page"?}``.

    Raises:
        ConfigError: no user message to take a query from.
        StoreError: the corpus is empty or was built with another embedding model.
    """
    if query is None:
        query = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    if not query.strip():
        raise ConfigError("cannot ground a conversation without a user message: pass query=...")
    opened = corpus if isinstance(corpus, Corpus) else shared_corpus(corpus)
    passages = opened.search(query, k=k, filters=filters)
    context = format_context(passages, max_chars=max_context_chars)
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{context}".lstrip()
    else:
        out.insert(0, {"role": "system", "content": context})
    citations = []
    for i, p in enumerate(passages, start=1):
        cite = {"index": i, **p.citation()}
        for key in ("section", "page", "record_id"):
            if key in p.chunk.metadata:
                cite[key] = p.chunk.metadata[key]
        citations.append(cite)
    return out, citations
