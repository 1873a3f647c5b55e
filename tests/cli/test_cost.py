"""`cadre cost ...` end to end through the Typer app, and its one-line errors through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadre.cli.main import app

runner = CliRunner()


def _json(args: list[str]) -> object:
    res = runner.invoke(app, ["cost", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_decode_json_has_the_required_keys() -> None:
    out = _json(
        [
            "decode",
            "--model",
            "llama-3-8b",
            "--hardware",
            "h100-sxm",
            "--precision",
            "fp8",
            "--batch",
            "8",
            "--context",
            "2048",
        ]
    )
    assert isinstance(out, dict)
    for key in (
        "seconds_per_token",
        "tokens_per_second",
        "arithmetic_intensity",
        "ridge_point",
        "bound",
        "kv_cache_bytes",
        "weight_bytes_read",
    ):
        assert key in out
    assert out["bound"] == "memory" and out["tokens_per_second"] == pytest.approx(
        8 / out["seconds_per_token"]
    )


def test_decode_accepts_config_json_and_gguf(tmp_path: Path) -> None:
    cfg = {
        "model_type": "llama",
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 500,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    out = _json(["decode", "--model", str(tmp_path / "config.json"), "--hardware", "l4"])
    assert out["weight_bytes_read"] > 0  # type: ignore[index]
    from cadre.costmodel.calibration import smollm2_gguf_path

    out = _json(["decode", "--model", str(smollm2_gguf_path()), "--hardware", "local"])
    assert out["precision"] == "q4_1"  # type: ignore[index]


def test_audit_json() -> None:
    out = _json(["audit"])
    assert isinstance(out, list) and len(out) >= 31
    assert {"id", "claim", "paper_value", "computed_value", "unit", "holds"} <= set(out[0])
    assert {c["id"] for c in out} >= {"C01", "C13", "C23", "C35"}


def test_audit_table_prints_every_claim() -> None:
    res = runner.invoke(app, ["cost", "audit"])
    assert res.exit_code == 0
    for cid in ("C01", "C11", "C28", "C35"):
        assert cid in res.stdout
    assert "DOES NOT HOLD" in res.stdout


def test_validate_json() -> None:
    out = _json(["validate"])
    assert out["n"] >= 30 and out["median_abs_pct_error"] <= 15  # type: ignore[index]
    assert out["share_within_30pct"] >= 0.8 and "loso_median_abs_pct_error" in out  # type: ignore[index,operator]


def test_roofline_and_compare_write_charts(tmp_path: Path) -> None:
    out = _json(
        [
            "roofline",
            "--hardware",
            "h200",
            "--model",
            "llama-3-8b",
            "--model",
            "qwen2.5-7b",
            "--plot",
            str(tmp_path / "r.png"),
            "--plot",
            str(tmp_path / "r.html"),
        ]
    )
    assert (tmp_path / "r.png").stat().st_size > 10_000 and len(out["workloads"]) == 2  # type: ignore[index]
    out = _json(
        [
            "compare",
            "--generalist",
            "llama-3-70b",
            "--specialist",
            "qwen2.5-0.5b",
            "--hardware",
            "h100-sxm",
            "-b",
            "1",
            "-b",
            "16",
            "--plot",
            str(tmp_path / "c.png"),
        ]
    )
    assert len(out) == 2 and (tmp_path / "c.png").is_file()  # type: ignore[arg-type]


def test_other_commands() -> None:
    assert _json(["kv", "--model", "deepseek-v3"])["bytes_per_token"] == 70_272  # type: ignore[index]
    assert _json(["fit", "--model", "llama-3-70b", "--hardware", "h100-sxm"])["devices_needed"] == 2  # type: ignore[index]
    assert _json(["prefill", "--model", "llama-3-8b", "--prompt-tokens", "4096"])["bound"] == "compute"  # type: ignore[index]
    tc = _json(["train-cost", "--compute", "2e25", "--mfu", "0.3", "--hardware", "h100-sxm"])
    assert tc["gpu_seconds"] == pytest.approx(2e25 / (0.3 * 989.4e12))  # type: ignore[index]
    assert _json(["speculative"])["speedup"] > 1  # type: ignore[index]
    assert len(_json(["hardware"])) >= 9  # type: ignore[arg-type]
    assert len(_json(["models"])) >= 11  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["decode", "--model", "llama-3-8x"], "did you mean llama-3-8b"),
        (["decode", "--model", "llama-3-8b", "--hardware", "h100"], "did you mean"),
        (["decode", "--model", "llama-3-8b", "--batch", "0"], "batch must be >= 1"),
        (["decode", "--model", "llama-3-8b", "--batch", "4096", "--context", "8192"], "batch:"),
        (["decode", "--model", "llama-3-8b", "--precision", "fp9"], "unknown precision"),
    ],
)
def test_bad_input_is_one_line(args: list[str], needle: str) -> None:
    res = subprocess.run(
        [sys.executable, "-c", "from cadre.cli.main import main; main()", "cost", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.stderr
