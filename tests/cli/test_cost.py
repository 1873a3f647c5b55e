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
_PLAN = ["plan", "--requests", "1000", "--input-tokens", "10", "--output-tokens", "5"]


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
    assert set(out["per_engine"]) >= {"llama.cpp-cuda", "llama.cpp-metal", "trt-llm"}  # type: ignore[index]


def test_decode_says_which_engine_and_how_far_off_it_was() -> None:
    ideal = runner.invoke(app, ["cost", "decode", "-m", "llama-3-8b", "-H", "rtx-4090", "-p", "q4_k_m"])
    assert ideal.exit_code == 0 and "ideal roofline" in ideal.stdout and "upper bound" in ideal.stdout
    auto = runner.invoke(
        app, ["cost", "decode", "-m", "llama-3-8b", "-H", "rtx-4090", "-p", "q4_k_m", "--engine", "auto"]
    )
    assert auto.exit_code == 0 and "llama.cpp-cuda" in auto.stdout and "fitted" in auto.stdout
    assert "upper bound on speed" not in auto.stdout
    j = _json(["decode", "-m", "llama-3-8b", "-H", "rtx-4090", "-p", "q4_k_m", "--engine", "auto"])
    assert j["engine"] == "llama.cpp-cuda" and j["engine_loso_median_abs_pct_error"] > 0  # type: ignore[index]


def test_plan_from_flags_json_and_table(tmp_path: Path) -> None:
    args = [
        "plan",
        "--requests",
        "2000000",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "200",
        "--peak-factor",
        "3",
        "--p95",
        "10",
        "--api",
        "gpt-4o-mini",
        "--self-hosted",
        "llama-3-8b@l4:int8",
    ]
    out = _json(args)
    assert isinstance(out, dict)
    api, l4 = out["options"]
    assert api["name"] == "gpt-4o-mini" and api["monthly_usd"] == pytest.approx(
        2e6 * (1000 * 0.15 + 200 * 0.6) / 1e6
    )
    assert l4["kind"] == "self_hosted" and l4["engine"] == "trt-llm" and l4["devices"] >= 1
    assert l4["monthly_usd"] == pytest.approx(l4["devices"] * 0.7 * 730)
    assert [r["factor"] for r in out["sensitivity"]] == [0.5, 2.0, 5.0]
    chart = tmp_path / "plan.png"
    res = runner.invoke(app, ["cost", *args, "--plot", str(chart)])
    assert res.exit_code == 0, res.output
    assert "break-even" in res.stdout and "sensitivity" in res.stdout and chart.stat().st_size > 10_000


def test_the_docs_worked_example_answers() -> None:
    """docs/cost.md quotes these figures; the example file is the one the docs run."""
    root = Path(__file__).resolve().parents[2]
    out = _json(["plan", str(root / "docs" / "examples" / "cost-plan-invoices.yaml")])
    by = {o["name"]: o for o in out["options"]}  # type: ignore[index]
    # API: 2M × (900 × $0.40 + 300 cached × $0.10 + 150 × $1.60) / 1e6 = $1,260
    assert by["gpt-4.1-mini API"]["monthly_usd"] == pytest.approx(1260.0)
    assert by["8B specialist on L4"]["devices"] == 2 and by["8B specialist on L4"][
        "monthly_usd"
    ] == pytest.approx(1022.0)
    assert by["70B on H100"]["devices"] == 3 and by["70B on H100"]["monthly_usd"] == pytest.approx(6570.0)
    assert by["0.5B specialist on CPU"]["monthly_usd"] == pytest.approx(876.0)
    assert all(o["meets_latency"] is not False for o in out["options"])  # type: ignore[index]


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
        ([*_PLAN, "--api", "gpt-4o-mni"], "did you mean"),
        ([*_PLAN, "--self-hosted", "l4"], "MODEL@HARDWARE"),
        (
            ["plan", "--input-tokens", "10", "--output-tokens", "5", "--api", "gpt-4o-mini"],
            "requests_per_month",
        ),
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
