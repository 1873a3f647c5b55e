"""Reports priced at deployment scale: measured tokens and quality through `cadre cost plan` (projected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import KeywordBackend
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.evaluate import (
    BackendSystem,
    Deployment,
    SystemSpec,
    deployment_section,
    load_task,
    measured_for_plan,
    read_summary,
    run_eval,
    write_report,
)


@pytest.fixture
def run_dir(intents_task: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    systems = [
        BackendSystem(
            SystemSpec(name="generalist", model="gemma3-270m", price_per_hour=2.0),
            KeywordBackend(fail_on=["refund"]),
        ),
        BackendSystem(
            SystemSpec(name="specialist", model="smollm2-135m", price_per_hour=0.1), KeywordBackend()
        ),
    ]
    run_eval(load_task(intents_task), systems, out, progress=False)
    return out


def test_measured_figures_come_from_the_summary(run_dir: Path) -> None:
    s = read_summary(run_dir)
    m = measured_for_plan(s)
    spec = s.systems["specialist"]
    assert m["specialist"].quality == pytest.approx(spec.accuracy)
    assert m["specialist"].input_tokens == pytest.approx(spec.latency.prompt_tokens_mean)
    assert m["specialist"].output_tokens == pytest.approx(spec.latency.completion_tokens_mean)


def test_section_prices_measured_systems_for_the_stated_deployment(run_dir: Path) -> None:
    s = read_summary(run_dir)
    sec = deployment_section({s.task: s}, Deployment(requests_per_month=2_000_000))
    plan = sec.plans[s.task]
    names = [o.name for o in plan.options]
    assert names == [
        "generalist on l4",
        "generalist on cpu-epyc-32c",
        "specialist on l4",
        "specialist on cpu-epyc-32c",
        "generalist prompts on gpt-4o-mini API",
        "generalist prompts on llama-3-70b (h100-sxm)",
    ]
    g = s.systems["generalist"]
    api = plan.option("generalist prompts on gpt-4o-mini API")
    # tokens × the price table's gpt-4o-mini ($0.15 in / $0.60 out per 1M), × 1000 requests
    by_hand = (g.latency.prompt_tokens_mean * 0.15 + g.latency.completion_tokens_mean * 0.60) / 1e6 * 1000
    assert api.usd_per_1k_requests == pytest.approx(by_hand)
    assert api.quality is None  # the API's quality was not measured here
    spec_l4 = plan.option("specialist on l4")
    assert spec_l4.quality == pytest.approx(s.systems["specialist"].accuracy)
    assert plan.workload.requests_per_month == 2_000_000
    md = sec.markdown()
    assert "## At deployment scale (projected, not measured)" in md and "2,000,000 requests/month" in md
    assert "not measured" in md and "| specialist on l4 |" in md
    assert "<h2>At deployment scale (projected, not measured)</h2>" in sec.html()


def test_eval_report_has_the_section(run_dir: Path) -> None:
    paths = write_report(run_dir, lm_eval=False)
    assert "## At deployment scale (projected, not measured)" in paths.markdown.read_text()  # type: ignore[union-attr]
    assert "At deployment scale" in paths.html.read_text()  # type: ignore[union-attr]


def test_cost_plan_reads_an_eval_run(run_dir: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        "workload: {requests_per_month: 1000000}\n"
        "options:\n"
        "  - {kind: api, name: generalist, price: gpt-4o-mini}\n"
        "  - {kind: self_hosted, name: specialist, model: smollm2-135m, hardware: l4}\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(
        app, ["cost", "plan", str(plan_file), "--from-eval", str(run_dir), "--system", "specialist", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    s = read_summary(run_dir)
    assert out["workload"]["input_tokens"] == pytest.approx(
        s.systems["specialist"].latency.prompt_tokens_mean
    )
    by_name = {o["name"]: o for o in out["options"]}
    assert by_name["generalist"]["quality"] == pytest.approx(s.systems["generalist"].accuracy)
    assert by_name["specialist"]["quality"] == pytest.approx(s.systems["specialist"].accuracy)
    bad = CliRunner().invoke(
        app, ["cost", "plan", str(plan_file), "--from-eval", str(run_dir), "--system", "x"]
    )
    assert bad.exit_code != 0 and "not in" in str(bad.exception)
