"""Structure-aware chunking with overlap.

A document is cut into segments (headings, and the sentences of each paragraph, with the paragraph they belong
to), and segments are packed greedily into chunks of at most ``max_chars``. A heading always starts a new chunk
and is remembered as the chunk's ``section`` (``Guide > Install``), and so does a PDF page break; a chunk
prefers to end at a paragraph boundary once it is three quarters full; consecutive chunks of one section share up to ``overlap_chars`` of
trailing sentences so that a fact split across a boundary is still found whole. Every chunk is an exact span
``text[start:end]`` of its document, so citations can point at character offsets.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass

from pydantic import model_validator

from cadre.config.base import StrictModel
from cadre.knowledge.ingest import Document
from cadre.knowledge.protocol import Chunk

__all__ = ["ChunkingConfig", "chunk_document", "chunk_id"]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


class ChunkingConfig(StrictModel):
    """How documents are cut: the longest chunk, and how much text consecutive chunks share."""

    max_chars: int = 1000  # all-MiniLM-L6-v2 reads 256 word pieces, about 1,000 characters of English
    overlap_chars: int = 150

    @model_validator(mode="after")
    def _check(self) -> ChunkingConfig:
        if self.max_chars < 50:
            raise ValueError(f"max_chars must be >= 50, got {self.max_chars}")
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            raise ValueError(
                f"overlap_chars must be in [0, max_chars/2), got {self.overlap_chars} with max_chars={self.max_chars}"
            )
        return self


@dataclass
class _Segment:
    start: int
    end: int
    heading: int  # 0 for body text, else the heading level
    paragraph_end: bool  # the last segment of its paragraph


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """A stable id: the same span of the same text always gets the same id."""
    digest = hashlib.sha256(f"{source}\x00{start}\x00{end}\x00{text}".encode()).hexdigest()
    return digest[:20]


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut the span [start, end) at whitespace into pieces of at most ``limit`` characters."""
    pieces = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        if cut <= start:
            cut = start + limit
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def _segments(text: str, *, markdown: bool, limit: int) -> list[_Segment]:
    out: list[_Segment] = []
    for para in re.finditer(r"\S(?:.*?\S)??(?=\s*\n[ \t]*\n|\s*\Z)", text, flags=re.S):
        p_start, p_end = para.start(), para.end()
        block = para.group(0)
        first_line = block.split("\n", 1)[0]
        m = _HEADING.match(first_line) if markdown else None
        if m:
            h_end = p_start + len(first_line)
            out.append(_Segment(p_start, h_end, len(m.group(1)), True))
            rest = text[h_end:p_end]
            offset = len(rest) - len(rest.lstrip())
            p_start = h_end + offset
            if p_start >= p_end:
                continue
        pieces: list[tuple[int, int]] = []
        s = p_start
        for cut in _SENTENCE_END.finditer(text, p_start, p_end):
            pieces.extend(_split_long(text, s, cut.start(), limit))
            s = cut.end()
        pieces.extend(_split_long(text, s, p_end, limit))
        for i, (a, b) in enumerate(pieces):
            out.append(_Segment(a, b, 0, i == len(pieces) - 1))
    return out


def _page(doc: Document, offset: int) -> int:
    """The 1-based PDF page holding character ``offset``."""
    return bisect.bisect_right(doc.page_starts, offset)


def chunk_document(doc: Document, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Cut ``doc`` into chunks (see the module docstring); an empty document gives no chunks."""
    cfg = config or ChunkingConfig()
    text = doc.text
    markdown = doc.format in ("markdown", "html", "text")
    segs = _segments(text, markdown=markdown, limit=cfg.max_chars)
    headings: list[str] = []  # the current heading path, one entry per level
    spans: list[tuple[int, int, str]] = []
    current: list[_Segment] = []
    section = ""

    def flush(keep_overlap: bool) -> None:
        nonlocal current
        body = [s for s in current if not s.heading]
        if body:
            spans.append((current[0].start, current[-1].end, section))
        if not (keep_overlap and body and cfg.overlap_chars):
            current = []
            return
        tail: list[_Segment] = []
        for s in reversed(body):
            if current[-1].end - s.start > cfg.overlap_chars:
                break
            tail.insert(0, s)
        current = tail

    for seg in segs:
        if seg.heading:
            flush(keep_overlap=False)
            title = _HEADING.match(text[seg.start : seg.end])
            del headings[seg.heading - 1 :]
            headings.extend([""] * (seg.heading - 1 - len(headings)))
            headings.append(title.group(2).strip() if title else text[seg.start : seg.end])
            section = " > ".join(h for h in headings if h)
            current = [seg]
            continue
        if doc.page_starts and current and _page(doc, seg.start) != _page(doc, current[0].start):
            flush(keep_overlap=False)  # a PDF page break ends a chunk, so each chunk cites one page
        if current and seg.end - current[0].start > cfg.max_chars:
            flush(keep_overlap=True)
            if current and seg.end - current[0].start > cfg.max_chars:
                current = []
        current.append(seg)
        if seg.paragraph_end and seg.end - current[0].start >= 0.75 * cfg.max_chars:
            flush(keep_overlap=True)
    flush(keep_overlap=False)

    chunks = []
    for start, end, sec in spans:
        piece = text[start:end]
        meta = dict(doc.metadata)
        if sec:
            meta["section"] = sec
        if doc.page_starts:
            meta["page"] = _page(doc, start)
        chunks.append(Chunk(chunk_id(doc.source, start, end, piece), doc.source, start, end, piece, meta))
    return chunks
