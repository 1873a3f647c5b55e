"""Reading files into documents: plain text, Markdown, HTML, PDF (pypdf) and JSONL records.

Each reader returns :class:`Document` objects whose ``text`` is what chunk offsets index into. HTML is turned
into Markdown-like text (``# Heading`` lines, blank lines between blocks) so that one structure-aware chunker
serves every format. A file that cannot be read raises :class:`IngestError` with the reason; the corpus
reports it and indexes the rest.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from cadre.errors import DataError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "IngestError",
    "content_hash",
    "expand_paths",
    "html_to_text",
    "read_documents",
]

SUPPORTED_SUFFIXES = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}
_TEXT_FIELDS = ("text", "content", "body", "passage", "abstract", "document")
_ID_FIELDS = ("id", "_id", "doc_id", "uid")


class IngestError(DataError):
    """One file (or record) cannot be ingested; the message says why and what to do."""


@dataclass
class Document:
    """Text to chunk, with its source name, format and metadata copied onto every chunk."""

    source: str
    text: str
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)
    page_starts: list[int] = field(default_factory=list)  # PDF: offset in ``text`` where each page begins


def content_hash(data: bytes) -> str:
    """The hash that decides whether a file changed since it was indexed."""
    return hashlib.sha256(data).hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to ingest (directories walked for supported suffixes) and (path, reason) for those that cannot be."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES)
            files.extend(f.resolve() for f in found)
        elif p.is_file():
            if p.suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(p.resolve())
            else:
                kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
                problems.append(
                    (str(p), f"unsupported file type {p.suffix or '(none)'!r}; supported: {kinds}")
                )
        else:
            problems.append((str(p), "no such file or directory"))
    unique = list(dict.fromkeys(files))
    return unique, problems


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise IngestError(
            f"{source}: not UTF-8 text (byte {err.start}); convert it, e.g. `iconv -t UTF-8`"
        ) from None


class _HTMLToText(HTMLParser):
    _BLOCK: ClassVar[set[str]] = {
        "p", "div", "section", "article", "header", "footer", "main", "aside", "ul", "ol", "li", "table",
        "tr", "blockquote", "pre", "figure", "figcaption", "dl", "dt", "dd", "br", "hr", "form",
    }  # fmt: skip
    _SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag != "li" else "\n\n- ")
            if tag == "pre":
                self._pre += 1
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCK:
            self.parts.append("\n\n")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._skip:
            return
        self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> tuple[str, str]:
    """Return (Markdown-like text, page title) for an HTML document."""
    parser = _HTMLToText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    text = re.sub(r"^(#{1,6}) +", r"\1 ", text, flags=re.M)
    return text, parser.title.strip()


def _read_pdf(data: bytes, source: str) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # many "encrypted" PDFs only restrict printing/copying
            except Exception as err:  # pypdf raises DependencyError when AES needs `cryptography`
                raise IngestError(f"{source}: encrypted PDF that cannot be opened ({err})") from None
            if not opened:
                raise IngestError(
                    f"{source}: encrypted PDF (a password is needed); decrypt it first, e.g. "
                    "`qpdf --decrypt --password=... in.pdf out.pdf`, and add the decrypted file"
                )
        pages: list[str] = []
        starts: list[int] = []
        offset = 0
        for page in reader.pages:
            page_text = (page.extract_text() or "").strip()
            starts.append(offset)
            pages.append(page_text)
            offset += len(page_text) + 2
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as err:
        raise IngestError(f"{source}: not a readable PDF ({err})") from None
    text = "\n\n".join(pages)
    meta: dict[str, Any] = {"pages": len(pages)}
    info = reader.metadata
    if info is not None and info.title:
        meta["title"] = str(info.title)
    return Document(source=source, text=text, format="pdf", metadata=meta, page_starts=starts)


def _read_jsonl(data: bytes, source: str, *, text_field: str | None) -> tuple[list[Document], list[str]]:
    docs: list[Document] = []
    problems: list[str] = []
    seen: set[str] = set()
    for lineno, line in enumerate(_decode(data, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{source}:{lineno}: not valid JSON ({err.msg}); record skipped")
            continue
        if not isinstance(record, dict):
            problems.append(f"{source}:{lineno}: a record must be a JSON object; record skipped")
            continue
        fields = (text_field,) if text_field else _TEXT_FIELDS
        key = next((f for f in fields if isinstance(record.get(f), str)), None)
        if key is None:
            want = text_field or " / ".join(_TEXT_FIELDS)
            problems.append(f"{source}:{lineno}: no text field ({want}); record skipped")
            continue
        rid_field = next((f for f in _ID_FIELDS if isinstance(record.get(f), str | int)), None)
        rid = str(record[rid_field]) if rid_field else str(lineno)
        if rid in seen:
            problems.append(f"{source}:{lineno}: duplicate record id {rid!r}; using the line number")
            rid = f"line{lineno}"
        seen.add(rid)
        meta = {
            k: v
            for k, v in record.items()
            if k != key
            and isinstance(v, str | int | float | bool)
            and not (isinstance(v, str) and len(v) > 200)
        }
        meta["record_id"] = rid
        docs.append(Document(source=f"{source}#{rid}", text=record[key], format="jsonl", metadata=meta))
    return docs, problems


def read_documents(
    path: Path, data: bytes, *, text_field: str | None = None
) -> tuple[list[Document], list[str]]:
    """Parse one file's bytes into documents, plus warnings about parts that were skipped.

    Raises:
        IngestError: the whole file is unusable (not UTF-8, encrypted or broken PDF, unsupported type).
    """
    source = str(path)
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise IngestError(f"{source}: unsupported file type {path.suffix!r}")
    if kind == "jsonl":
        docs, problems = _read_jsonl(data, source, text_field=text_field)
    elif kind == "pdf":
        docs, problems = [_read_pdf(data, source)], []
    elif kind == "html":
        text, title = html_to_text(_decode(data, source))
        docs, problems = [Document(source, text, "html", {"title": title} if title else {})], []
    else:
        docs, problems = [Document(source, _decode(data, source), kind)], []
    for doc in docs:
        doc.metadata.setdefault("file", source)
        doc.metadata["format"] = doc.format
    return docs, problems
