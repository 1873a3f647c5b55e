from __future__ import annotations

import itertools

import pytest

from cadre.config.base import parse_spec
from cadre.errors import ConfigError
from cadre.knowledge.chunking import ChunkingConfig, chunk_document
from cadre.knowledge.ingest import Document

SENTENCES = " ".join(f"Fact number {i} says that the widget {i} weighs {i * 3} grams." for i in range(40))
MARKDOWN = f"""# Widget Guide

A short introduction to widgets.

## Weights

{SENTENCES}

Closing remark for weights.

## Colours

Widgets come in teal and ochre.
"""


def test_every_chunk_is_an_exact_span_within_the_size_limit() -> None:
    cfg = ChunkingConfig(max_chars=300, overlap_chars=80)
    chunks = chunk_document(Document("guide.md", MARKDOWN, "markdown"), cfg)
    assert len(chunks) > 5
    for c in chunks:
        assert MARKDOWN[c.start : c.end] == c.text
        assert len(c.text) <= cfg.max_chars
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_headings_start_chunks_and_name_their_section() -> None:
    chunks = chunk_document(
        Document("guide.md", MARKDOWN, "markdown"), ChunkingConfig(max_chars=300, overlap_chars=80)
    )
    colours = [c for c in chunks if "teal" in c.text]
    assert len(colours) == 1
    assert colours[0].text.startswith("## Colours")
    assert colours[0].metadata["section"] == "Widget Guide > Colours"
    assert all("teal" not in c.text for c in chunks if c.metadata["section"].endswith("Weights"))
    assert chunks[0].metadata["section"] == "Widget Guide"


def test_consecutive_chunks_overlap_by_whole_sentences() -> None:
    chunks = chunk_document(
        Document("guide.md", MARKDOWN, "markdown"), ChunkingConfig(max_chars=300, overlap_chars=80)
    )
    weights = [c for c in chunks if c.metadata["section"].endswith("Weights")]
    assert len(weights) >= 3
    for a, b in itertools.pairwise(weights):
        assert b.start < a.end, "consecutive chunks of one section share text"
        assert a.end - b.start <= 80
        assert MARKDOWN[b.start : a.end].strip().endswith("grams.")


def test_no_overlap_when_disabled_and_nothing_lost() -> None:
    chunks = chunk_document(
        Document("t.txt", SENTENCES, "text"), ChunkingConfig(max_chars=200, overlap_chars=0)
    )
    assert all(b.start >= a.end for a, b in itertools.pairwise(chunks))
    covered = "".join(SENTENCES[c.start : c.end] for c in chunks).replace(" ", "")
    assert covered == SENTENCES.replace(" ", "")


def test_a_long_unbroken_paragraph_is_split_at_whitespace() -> None:
    text = "word " * 500
    chunks = chunk_document(Document("w.txt", text, "text"), ChunkingConfig(max_chars=120, overlap_chars=20))
    assert len(chunks) >= 20
    assert all(len(c.text) <= 120 and not c.text.startswith(" ") for c in chunks)


def test_pdf_chunks_know_their_page() -> None:
    page1, page2 = "Alpha facts live here.", "Beta facts live on the second page."
    doc = Document("d.pdf", f"{page1}\n\n{page2}", "pdf", page_starts=[0, len(page1) + 2])
    chunks = chunk_document(doc, ChunkingConfig(max_chars=60, overlap_chars=0))
    assert [c.metadata["page"] for c in chunks] == [1, 2]


def test_empty_document_gives_no_chunks() -> None:
    assert chunk_document(Document("e.txt", "  \n\n  ", "text")) == []


@pytest.mark.parametrize(("size", "overlap"), [(10, 0), (200, 150), (200, -1)])
def test_bad_settings_are_rejected(size: int, overlap: int) -> None:
    with pytest.raises(ConfigError, match="chunking"):
        parse_spec(ChunkingConfig, {"max_chars": size, "overlap_chars": overlap}, source="chunking")
