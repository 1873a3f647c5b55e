"""Writing tasks to disk and the ``cadre data generate`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.errors import DataError, NotFoundError
from cadre.synth import read_jsonl, write_router_data, write_task


def test_write_task_files_and_manifest(tmp_path: Path) -> None:
    res = write_task("invoices", tmp_path, n_train=30, n_val=5, n_test=10, seed=7, n_oos=6)
    assert res.counts == {"train": 30, "validation": 5, "test": 10, "out_of_scope": 6}
    test = read_jsonl(tmp_path / "test.jsonl")
    assert len(test) == 10 and all(r["task"] == "invoices" for r in test)
    assert read_jsonl(tmp_path / "router_test.jsonl") == [
        {"text": r["text"], "route": "invoices"} for r in test
    ]
    oos = read_jsonl(tmp_path / "out_of_scope.jsonl")
    assert all(r["task"] == "out_of_scope" and r["answer"] is None for r in oos)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["metric"] == "json_field_match" and manifest["seed"] == 7
    # same call, same bytes
    before = (tmp_path / "train.jsonl").read_bytes()
    write_task("invoices", tmp_path, n_train=30, n_val=5, n_test=10, seed=7, n_oos=6)
    assert (tmp_path / "train.jsonl").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_router_data_mixes_tasks_and_out_of_scope(tmp_path: Path) -> None:
    paths = write_router_data(
        ["intents", "normalize"], tmp_path, n_per_task={"train": 10, "validation": 3, "test": 4}, seed=1
    )
    rows = read_jsonl(paths["train"])
    routes = [r["route"] for r in rows]
    assert routes.count("intents") == 10 and routes.count("normalize") == 10 and routes.count(None) == 10
    train_texts = {r["text"] for r in rows}
    assert not train_texts & {r["text"] for r in read_jsonl(paths["test"])}


def test_read_jsonl_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        read_jsonl(bad)
    with pytest.raises(NotFoundError, match="cadre data generate"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_cli_data_generate(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "generate", "all", "--out", str(tmp_path), "--n", "40", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [o["task"] for o in out] == ["intents", "invoices", "normalize"]
    assert out[0]["counts"] == {"train": 32, "validation": 4, "test": 4, "out_of_scope": 4}
    assert len(read_jsonl(tmp_path / "normalize" / "train.jsonl")) == 32
    result = runner.invoke(app, ["data", "generate", "normalise", "--out", str(tmp_path)])
    assert result.exit_code != 0
