"""`cadre route fit / eval / explain / calibrate` end to end on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from cadre.cli.main import app

runner = CliRunner()


def test_fit_eval_explain_end_to_end(
    router_files: dict[str, Path], tmp_path: Path, memo_default_embedder: object, test_examples: object
) -> None:
    out = tmp_path / "router"
    res = runner.invoke(
        app,
        [
            *["route", "fit", "--data", str(router_files["train"]), "--out", str(out), "--json"],
            *["--encoder", "frozen", "--min-in-scope-accuracy", "0.9"],
        ],
    )
    assert res.exit_code == 0, res.output
    fit = json.loads(res.output)
    assert fit["encoder"]["chosen"] == "frozen"
    assert fit["threshold"]["target"] == "keep in-scope accuracy >= 0.9"
    assert fit["threshold"]["held_out_estimate"]["in_scope_accuracy"] >= 0.9
    assert fit["strategy"] in ("centroid", "knn", "linear") and fit["routes"] == [
        "intents",
        "invoices",
        "normalize",
    ]

    res = runner.invoke(
        app, ["route", "eval", "--router", str(out), "--data", str(router_files["test"]), "--json"]
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    for key in ("accuracy", "ood_auroc", "p50_ms", "p99_ms", "per_route", "confusion", "coverage_risk"):
        assert key in rep
    for key in ("domain_accuracy", "oos_recall", "oos_precision", "ood_auroc", "fpr95"):
        assert isinstance(rep[key], float), key
    assert rep["accuracy_vs_oos_recall"][0]["oos_recall"] == 0.0
    assert rep["domain_accuracy"] >= 0.95 and rep["ood_auroc"] >= 0.9

    res = runner.invoke(
        app, ["route", "eval", "--router", str(out), "--data", str(router_files["test"]), "--no-batch"]
    )
    assert res.exit_code == 0 and "out-of-domain AUROC" in res.output

    res = runner.invoke(
        app, ["route", "explain", "--router", str(out), "What is the capital of Japan?", "--json"]
    )
    assert res.exit_code == 0, res.output
    exp = json.loads(res.output)
    assert exp["decision"]["route"] == "generalist" and len(exp["nearest"]) == 5
    res = runner.invoke(app, ["route", "explain", "--router", str(out), "Normalize: 5 March 2020"])
    assert res.exit_code == 0 and "normalize" in res.output and "nearest training examples" in res.output
    assert "threshold: keep in-scope accuracy >= 0.9 -> ood_alpha" in res.output


def test_eval_reports_routellm_metrics_when_quality_is_given(
    tmp_path: Path, router_files: dict[str, Path], memo_default_embedder: object, test_examples: object
) -> None:
    out = tmp_path / "router"
    assert (
        runner.invoke(
            app,
            ["route", "fit", "--data", str(router_files["train"]), "--out", str(out), "--encoder", "frozen"],
        ).exit_code
        == 0
    )
    rows = [json.loads(line) for line in router_files["test"].read_text().splitlines()]
    for r in rows:  # the specialists answer in-scope requests well, the generalist answers everything
        r["quality"] = {"specialist": 1.0 if r["route"] else 0.0, "generalist": 1.0}
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = runner.invoke(
        app, ["route", "eval", "--router", str(out), "--data", str(data), "--json", "--no-batch"]
    )
    assert res.exit_code == 0, res.output
    rl = json.loads(res.output)["routellm"]
    assert rl["apgr"] > 0.8 and rl["cpt80"] < 0.5  # the OOD score finds the out-of-scope requests first


def test_bad_data_is_one_line_error(tmp_path: Path) -> None:
    from cadre.cli.main import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "route": "x"}\n{"text": ""}\n')
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cadre.cli.main import main; main()",
            "route",
            "fit",
            "--data",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"{bad}:2" in proc.stderr and "Traceback" not in proc.stderr
    assert callable(main)


def test_calibrate_writes_a_cascade(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=600)
    err = rng.uniform(size=600) < (1 - conf) * 0.4
    scores = tmp_path / "scores.jsonl"
    scores.write_text(
        "\n".join(json.dumps({"confidence": float(c), "error": int(e)}) for c, e in zip(conf, err))
    )
    out = tmp_path / "cascade.json"
    res = runner.invoke(
        app,
        [
            "route",
            "calibrate",
            "--scores",
            str(scores),
            "--out",
            str(out),
            "--max-error-rate",
            "0.1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    cal = json.loads(res.output)
    assert cal["target"] == "error_rate" and 0 < cal["kept_share"] < 1
    assert json.loads(out.read_text())["threshold"] == cal["threshold"]
