from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadre.knowledge.ingest import IngestError, expand_paths, html_to_text, read_documents

from .conftest import encrypt_pdf, write_pdf


def test_html_keeps_headings_and_blocks_and_drops_scripts() -> None:
    html = """<html><head><title>Quell Almanac</title><style>p{color:red}</style></head><body>
    <h1>Quell</h1><p>The   moons are <b>three</b>.</p><script>alert('x')</script>
    <h2>Tides</h2><ul><li>High at dawn</li><li>Low at dusk</li></ul></body></html>"""
    text, title = html_to_text(html)
    assert title == "Quell Almanac"
    assert "# Quell" in text and "## Tides" in text
    assert "The moons are three." in text
    assert "alert" not in text and "color" not in text
    assert "- High at dawn" in text


def test_jsonl_records_become_documents_and_bad_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "facts.jsonl"
    lines = [
        json.dumps({"id": "a1", "text": "Ossory has 12 lighthouses.", "region": "west", "year": 1901}),
        "{broken",
        json.dumps({"title": "no text field"}),
        json.dumps({"body": "Second record, no id."}),
    ]
    path.write_text("\n".join(lines) + "\n")
    docs, problems = read_documents(path, path.read_bytes())
    assert [d.source for d in docs] == [f"{path}#a1", f"{path}#4"]
    assert docs[0].metadata["region"] == "west" and docs[0].metadata["year"] == 1901
    assert docs[0].metadata["file"] == str(path)
    assert len(problems) == 2 and ":2:" in problems[0] and ":3:" in problems[1]


def test_jsonl_text_field_can_be_named(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": 1, "summary": "Named field text."}) + "\n")
    docs, _ = read_documents(path, path.read_bytes(), text_field="summary")
    assert docs[0].text == "Named field text."


def test_pdf_text_and_pages(tmp_path: Path) -> None:
    pdf = write_pdf(
        tmp_path / "a.pdf", [["The Varn engine idles at 440 rpm."], ["Page two mentions Tessaly."]]
    )
    (doc,), _ = read_documents(pdf, pdf.read_bytes())
    assert "440 rpm" in doc.text and "Tessaly" in doc.text
    assert doc.metadata["pages"] == 2 and doc.page_starts[0] == 0
    assert doc.text[doc.page_starts[1] :].startswith("Page two")


def test_encrypted_pdf_is_a_clear_error(tmp_path: Path) -> None:
    plain = write_pdf(tmp_path / "p.pdf", [["Secret: the vault code is 8812."]])
    locked = encrypt_pdf(plain, tmp_path / "locked.pdf", "hunter2")
    with pytest.raises(IngestError, match="encrypted PDF"):
        read_documents(locked, locked.read_bytes())


def test_broken_pdf_and_non_utf8_text_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(IngestError, match="PDF"):
        read_documents(bad, bad.read_bytes())
    latin = tmp_path / "l.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(IngestError, match="UTF-8"):
        read_documents(latin, latin.read_bytes())


def test_expand_paths_walks_directories_and_reports_the_rest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("# A")
    (tmp_path / "b.txt").write_text("B")
    (tmp_path / "c.bin").write_bytes(b"\0")
    files, problems = expand_paths([tmp_path, tmp_path / "c.bin", tmp_path / "missing.md"])
    assert [f.name for f in files] == ["b.txt", "a.md"]
    assert {Path(p).name for p, _ in problems} == {"c.bin", "missing.md"}
