"""Reports: Markdown, the self-contained HTML page, lm-evaluation-harness results and the CLI on a run."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from eval_helpers import KeywordBackend
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.evaluate import BackendSystem, SystemSpec, load_task, run_eval, write_report
from cadre.evaluate.report import pareto_frontier


@pytest.fixture
def run_dir(intents_task: Path, tmp_path: Path) -> Path:
    task = load_task(intents_task)
    out = tmp_path / "run"
    systems = [
        BackendSystem(
            SystemSpec(name="generalist", model="kw", price_per_hour=2.0), KeywordBackend(fail_on=["refund"])
        ),
        BackendSystem(SystemSpec(name="specialist", model="kw", price_per_hour=0.1), KeywordBackend()),
    ]
    run_eval(task, systems, out, perturbations=["casing", "typos"], progress=False)
    return out


def test_markdown_and_html_reports(run_dir: Path) -> None:
    paths = write_report(run_dir)
    md = paths.markdown.read_text()  # type: ignore[union-attr]
    assert "| System | Model | Shots | accuracy | Advantage (pts, 95% CI) |" in md
    assert "| generalist |" in md and "| baseline |" in md
    assert "specialist better than generalist" not in md or "95% CI" in md
    assert "## Robustness" in md and "| specialist | typos |" in md
    page = paths.html.read_text()  # type: ignore[union-attr]
    # self-contained: no external fetches, charts inline
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 4  # difference, quality-vs-cost, latency, robustness
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "Evaluation: toy-intents" in page and "Cost ratio" in page and "Consistency" in page
    assert "× cheaper" in page  # 0.1 $/h vs 2 $/h on similar latencies


def test_lm_eval_results_shape(run_dir: Path) -> None:
    paths = write_report(run_dir, html_page=False)
    res = json.loads((run_dir / "lm_eval" / "specialist" / "results.json").read_text())
    assert len(paths.lm_eval) == 2
    assert res["results"]["toy-intents"]["acc,none"] == pytest.approx(0.9)
    assert res["results"]["toy-intents"]["acc_stderr,none"] == pytest.approx((0.9 * 0.1 / 9) ** 0.5)
    assert res["n-samples"]["toy-intents"] == {"original": 10, "effective": 10}
    assert res["n-shot"]["toy-intents"] == 0 and res["higher_is_better"]["toy-intents"] == {"acc": True}
    assert res["configs"]["toy-intents"]["output_type"] == "generate_until"


def test_pareto_frontier() -> None:
    pts = [
        ("big", 10.0, 0.9),
        ("small", 0.1, 0.85),
        ("mid", 1.0, 0.8),
        ("best", 5.0, 0.95),
        ("tie", 0.1, 0.7),
    ]
    assert pareto_frontier(pts) == ["small", "best"]


def test_cli_report_compare_and_json(run_dir: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["eval", "report", str(run_dir), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["systems"]["specialist"]["metric"] == pytest.approx(0.9) and data["files"]["html"].endswith(
        "report.html"
    )
    r = runner.invoke(app, ["eval", "compare", str(run_dir), "specialist", "generalist", "--json"])
    assert r.exit_code == 0, r.output
    comp = json.loads(r.output)
    assert comp["mcnemar"]["b"] == 1 and comp["mcnemar"]["c"] == 0 and comp["n"] == 10
    r = runner.invoke(app, ["eval", "compare", str(run_dir), "specialist", "generalist"])
    assert r.exit_code == 0 and "McNemar (exact)" in r.output
    r = runner.invoke(app, ["eval", "report", str(run_dir)])
    assert r.exit_code == 0 and "Robustness" in r.output
    r = runner.invoke(app, ["eval", "list", "--json"])
    assert "noop" in json.loads(r.output)["perturbations"]


def test_cli_run_with_a_systems_file_against_an_http_endpoint(intents_task: Path, tmp_path: Path) -> None:
    from eval_helpers import OpenAIStub

    stub = OpenAIStub()
    try:
        systems = tmp_path / "systems.yaml"
        systems.write_text(
            f"systems:\n  - {{name: hosted, kind: openai, model: 'openai:m@{stub.base_url}', price: gpt-4o-mini}}\n",
            encoding="utf-8",
        )
        out = tmp_path / "run"
        args = ["eval", "run", str(intents_task), "--systems", str(systems), "--out", str(out)]
        r = CliRunner().invoke(app, [*args, "--perturb", "casing", "--json"])
        assert r.exit_code == 0, r.output
        data = json.loads(r.output)
        assert data["systems"]["hosted"]["metric"] == pytest.approx(0.9) and data["complete"] is True
        assert data["robustness"][0]["perturbation"] == "casing" and (out / "report.html").is_file()
        r = CliRunner().invoke(app, [*args, "--temperature", "0.7", "--repeats", "2"])
        assert r.exit_code != 0 and "different task or settings" in str(r.exception)
    finally:
        stub.close()
