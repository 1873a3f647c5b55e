"""``cadre index``: build, search and manage retrieval corpora (library: :mod:`cadre.knowledge`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from cadre.cli.output import console, err_console, print_json
from cadre.errors import ConfigError

index_app = typer.Typer(
    name="index",
    help="Build and search the retrieval corpora that ground specialists' answers.",
    no_args_is_help=True,
)


def _parse_filters(items: list[str] | None) -> dict[str, Any]:
    filters: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--filter {item!r}: write KEY=VALUE (repeat the flag for several)")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if not isinstance(parsed, str | int | float | bool):
            parsed = value
        filters.setdefault(key, []).append(parsed)
    return filters


@index_app.command("add")
def add(
    corpus: str = typer.Argument(..., help="Corpus name (kept under $CADRE_HOME/corpora) or directory path."),
    paths: list[Path] = typer.Argument(..., help="Files or directories: .txt .md .html .pdf .jsonl"),
    store: str | None = typer.Option(None, help="Store for a new corpus: sqlite-vec (default) or pgvector."),
    dsn: str | None = typer.Option(None, help="pgvector: PostgreSQL connection string (or $CADRE_PG_DSN)."),
    table: str | None = typer.Option(
        None, help="pgvector: table name prefix (default from the corpus name)."
    ),
    chunk_chars: int = typer.Option(1000, help="New corpus: longest chunk, in characters."),
    overlap_chars: int = typer.Option(150, help="New corpus: text shared by consecutive chunks."),
    text_field: str | None = typer.Option(None, help="JSONL: the field holding the text."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index files into CORPUS (created if new); unchanged files are skipped, changed ones replaced."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from cadre.config import parse_spec
    from cadre.knowledge import ChunkingConfig, open_corpus

    options = {k: v for k, v in {"dsn": dsn, "table": table}.items() if v}
    chunking = parse_spec(
        ChunkingConfig,
        {"max_chars": chunk_chars, "overlap_chars": overlap_chars},
        source="--chunk-chars/--overlap-chars",
    )
    with open_corpus(corpus, create=True, store=store, store_options=options, chunking=chunking) as c:
        with Progress(
            TextColumn("[bold]embedding chunks"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=as_json,
        ) as progress:
            task = progress.add_task("embed", total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = c.add(paths, text_field=text_field, on_progress=update)
        total_chunks = c.store.count()
    if as_json:
        print_json(
            {**report.__dict__, "chunks_per_second": report.chunks_per_second, "corpus_chunks": total_chunks}
        )
    else:
        for path, reason in report.failed:
            err_console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
        for warning in report.warnings:
            err_console.print(f"[yellow]warning[/] {warning}", highlight=False)
        console.print(
            f"[green]{c.name}[/]: {len(report.indexed)} new, {len(report.replaced)} replaced, "
            f"{len(report.unchanged)} unchanged, {len(report.failed)} failed files; "
            f"+{report.chunks_added} chunks ({report.chunks_per_second:.0f}/s), {total_chunks} in total"
        )
    if report.failed and not (report.indexed or report.replaced or report.unchanged):
        raise typer.Exit(1)


@index_app.command("search")
def search(
    corpus: str = typer.Argument(..., help="Corpus name or path."),
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "-k", "--k", help="How many passages."),
    mode: str = typer.Option("hybrid", help="hybrid (BM25 + dense, fused), dense or bm25."),
    filters: list[str] | None = typer.Option(
        None, "--filter", help="KEY=VALUE metadata filter (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print passages as JSON."),
) -> None:
    """Search CORPUS and print the best passages with their citations."""
    from rich.table import Table

    from cadre.knowledge import open_corpus

    with open_corpus(corpus) as c:
        passages = c.search(query, k=k, filters=_parse_filters(filters), mode=mode)  # type: ignore[arg-type]
    if as_json:
        print_json([{**p.citation(), "text": p.chunk.text, "metadata": p.chunk.metadata} for p in passages])
        return
    table = Table(title=f"{c.name}: {query}", show_lines=True)
    for col in ("#", "score", "source", "offsets", "text"):
        table.add_column(col, overflow="fold")
    for i, p in enumerate(passages, start=1):
        where = p.chunk.source + (
            f" › {p.chunk.metadata['section']}" if p.chunk.metadata.get("section") else ""
        )
        text = " ".join(p.chunk.text.split())
        table.add_row(str(i), f"{p.score:.4f}", where, f"{p.chunk.start}-{p.chunk.end}", text[:300])
    console.print(table)


@index_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the corpora under $CADRE_HOME/corpora."""
    from rich.table import Table

    from cadre.knowledge import list_corpora

    infos = list_corpora()
    if as_json:
        print_json(infos)
        return
    table = Table(title="corpora")
    for col in ("name", "store", "files", "chunks", "embedding model"):
        table.add_column(col)
    for info in infos:
        table.add_row(info.name, info.store, str(info.files), str(info.chunks), info.embedding_model)
    console.print(table if infos else "no corpora yet: `cadre index add NAME PATH...` makes one")


@index_app.command("info")
def info(
    corpus: str = typer.Argument(..., help="Corpus name or path."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show a corpus's store, embedding model, chunking and size."""
    from cadre.knowledge import open_corpus

    with open_corpus(corpus) as c:
        data = c.info()
    if as_json:
        print_json(data)
        return
    for key, value in data.__dict__.items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


@index_app.command("remove")
def remove(
    corpus: str = typer.Argument(..., help="Corpus name or path."),
    source: Path | None = typer.Option(None, help="Remove only this file's chunks, not the corpus."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a corpus (or one file's chunks from it)."""
    from cadre.knowledge import open_corpus, remove_corpus

    if source is not None:
        with open_corpus(corpus) as c:
            n = c.remove_source(source)
        console.print(f"removed {n} chunks of {source} from {corpus}")
        return
    if not yes:
        typer.confirm(f"delete corpus {corpus!r} and its index?", abort=True)
    removed = remove_corpus(corpus)
    console.print(f"removed corpus {removed.name} ({removed.chunks} chunks)")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.add_typer(index_app, name="index")
