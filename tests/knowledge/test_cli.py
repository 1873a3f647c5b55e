from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cadre.cli.main import app

from .fictional import write_corpus

runner = CliRunner()


def test_index_add_search_list_info_remove(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "broken.txt").write_bytes(b"\xff\xfe\xfa not utf-8")
    result = runner.invoke(app, ["index", "add", "fiction", str(docs), "--chunk-chars", "600", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["indexed"]) == 5 and report["failed"][0][0].endswith("broken.txt")

    result = runner.invoke(app, ["index", "add", "fiction", str(docs)])
    assert result.exit_code == 0 and "5 unchanged" in result.stdout

    result = runner.invoke(
        app, ["index", "search", "fiction", "Who commands the Zorblax station?", "--json", "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and "Ilvane Mortescu" in hits[0]["text"]
    assert {"chunk_id", "source", "start", "end", "score"} <= set(hits[0])

    result = runner.invoke(
        app, ["index", "search", "fiction", "scrolls", "--filter", "topic=weather", "--json"]
    )
    assert all(h["metadata"]["topic"] == "weather" for h in json.loads(result.stdout))

    result = runner.invoke(app, ["index", "search", "fiction", "Glimmerfen bridge"])
    assert result.exit_code == 0 and "413" in result.stdout

    listed = json.loads(runner.invoke(app, ["index", "list", "--json"]).stdout)
    assert [c["name"] for c in listed] == ["fiction"] and listed[0]["files"] == 5
    info = json.loads(runner.invoke(app, ["index", "info", "fiction", "--json"]).stdout)
    assert info["chunking"]["max_chars"] == 600 and info["store"] == "sqlite-vec"

    result = runner.invoke(app, ["index", "remove", "fiction", "--yes"])
    assert result.exit_code == 0
    assert json.loads(runner.invoke(app, ["index", "list", "--json"]).stdout) == []


def test_cli_errors_are_typed(tmp_path: Path) -> None:
    from cadre.errors import ConfigError, NotFoundError

    result = runner.invoke(app, ["index", "search", "missing", "x"])
    assert isinstance(result.exception, NotFoundError)
    result = runner.invoke(app, ["index", "add", "bad/../name", str(tmp_path), "--chunk-chars", "10"])
    assert isinstance(result.exception, ConfigError)
    only_bad = tmp_path / "bad.bin"
    only_bad.write_bytes(b"\0")
    result = runner.invoke(app, ["index", "add", "c2", str(only_bad)])
    assert result.exit_code == 1
