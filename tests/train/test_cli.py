"""`cadre train` and `cadre export` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cadre.cli.main import app


def test_train_then_export_json(tiny_base: Path, chat_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = [
        "train",
        "--base",
        str(tiny_base),
        "--data",
        str(chat_data),
        "--out",
        str(out),
        "--max-steps",
        "2",
    ]
    args += ["--rank", "4", "--batch-size", "4", "--max-length", "96", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["steps"] == 2 and payload["adapter_dir"] == str(out)
    assert payload["seconds"]["train"] > 0 and payload["seconds"]["load_model"] > 0  # where the time went
    assert json.loads((out / "train_config.json").read_text())["lora"]["rank"] == 4

    res = runner.invoke(app, ["export", str(out), "--format", "gguf-adapter", "--quant", "F16", "--json"])
    assert res.exit_code == 0, res.output
    exported = json.loads(res.stdout)
    assert exported["path"] == str(out / "adapter-f16.gguf") and exported["bytes"] > 0
    assert exported["seconds"] >= 0


def test_malformed_line_is_one_error_line_before_any_training(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": \n', encoding="utf-8")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "o")]
    proc = subprocess.run(
        [sys.executable, "-c", "from cadre.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{data}:2: not valid JSON" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()
