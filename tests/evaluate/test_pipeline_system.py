"""A pipeline as a system of `cadre eval`: parsed from -s, run on each item's input, costed and timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cadre.errors import ConfigError
from cadre.evaluate import load_task, parse_system, read_summary, run_eval
from cadre.evaluate.records import read_run_records
from cadre.evaluate.report import render_markdown

ECOSYSTEM = {
    "specialists": [{"name": "intents"}],
    "server": {"fallback": "error"},
    "pipelines": {
        "kw": {
            "steps": [
                {
                    "id": "m",
                    "kind": "tool",
                    "tool": "regex_extract",
                    "args": {"text": "{input.text}", "pattern": "refund|cancel", "ignore_case": True},
                },
                {
                    "id": "is_refund",
                    "kind": "tool",
                    "tool": "arithmetic",
                    "args": {"expression": "1"},
                    "when": "m.match in ['refund', 'Refund']",
                },
            ],
            "output": "{is_refund}",
        }
    },
}


def test_parse_system() -> None:
    s = parse_system("pipe=pipeline:kw,ecosystem=eco.yaml,price_per_hour=0.1")
    assert (s.kind, s.pipeline, s.ecosystem, s.name) == ("pipeline", "kw", "eco.yaml", "pipe")
    assert parse_system("pipeline:kw,ecosystem=e.yaml").name == "pipeline-kw"
    with pytest.raises(ConfigError, match="pipeline:NAME,ecosystem=FILE"):
        parse_system("pipe=pipeline:kw")


def test_a_pipeline_is_evaluated_with_cost_and_latency(intents_task: Path, tmp_path: Path) -> None:
    eco = tmp_path / "eco.yaml"
    eco.write_text(yaml.safe_dump(ECOSYSTEM), encoding="utf-8")
    systems = [parse_system(f"pipe=pipeline:kw,ecosystem={eco},price_per_hour=0.05")]
    summary = run_eval(load_task(intents_task), systems, tmp_path / "run", progress=False, perturbations=[])
    recs = read_run_records(tmp_path / "run")
    assert len(recs) == 10 and not any(r["error"] for r in recs)
    by_id = {r["item_id"]: r for r in recs}
    assert by_id["a3"]["raw"] == "1" and by_id["a1"]["raw"] == ""  # the when: skipped it: null output
    assert all(r["latency_s"] > 0 for r in recs)
    s = summary.systems["pipe"]
    assert s.model == "pipeline:kw"
    assert s.cost.method == "hardware:local" and s.cost.per_request is not None and s.cost.per_request > 0
    assert s.metric == 0.0  # a keyword rule answering "1" is never a label: the metric is computed, not faked


def test_an_unknown_pipeline_is_a_config_error(intents_task: Path, tmp_path: Path) -> None:
    eco = tmp_path / "eco.yaml"
    eco.write_text(yaml.safe_dump(ECOSYSTEM), encoding="utf-8")
    with pytest.raises(ConfigError, match="has no pipeline 'nope'"):
        run_eval(
            load_task(intents_task),
            [parse_system(f"pipeline:nope,ecosystem={eco}")],
            tmp_path / "r",
            progress=False,
            perturbations=[],
        )


def test_per_step_accuracy_when_the_task_has_per_step_references(tmp_path: Path) -> None:
    rows = [
        {
            "id": "a",
            "text": "I want a refund",
            "answer": "1",
            "steps": {"m": {"match": "refund"}, "is_refund": 1},
        },
        {"id": "b", "text": "cancel it", "answer": "", "steps": {"m": {"match": "cancel"}, "is_refund": 1}},
        {"id": "c", "text": "hello", "answer": "", "steps": {"m": {"match": "refund"}, "is_refund": 1}},
    ]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "task.yaml").write_text(
        "name: steps\ndata: items.jsonl\ninput_field: text\nstep_target_field: steps\nmetric: exact_match\n",
        encoding="utf-8",
    )
    eco = tmp_path / "eco.yaml"
    eco.write_text(yaml.safe_dump(ECOSYSTEM), encoding="utf-8")
    summary = run_eval(
        load_task(tmp_path / "task.yaml"),
        [parse_system(f"pipe=pipeline:kw,ecosystem={eco}")],
        tmp_path / "run",
        progress=False,
    )
    s = summary.systems["pipe"]
    assert s.step_accuracy == pytest.approx({"m": 2 / 3, "is_refund": 1 / 3})
    assert read_summary(tmp_path / "run").systems["pipe"].step_accuracy == s.step_accuracy
    rec = {r["item_id"]: r for r in read_run_records(tmp_path / "run")}["b"]
    assert rec["step_outputs"] == {"m": {"match": "cancel", "groups": []}, "is_refund": None}
    assert [t["status"] for t in rec["trace"]] == ["ok", "skipped"]
    assert "pipe per step (share correct): m 66.7%, is_refund 33.3%." in render_markdown(summary)
