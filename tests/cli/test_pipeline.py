"""`cadre pipeline run|show` and `cadre check` on a pipeline, through the real CLI (tool steps load no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cadre.cli.main import app

ECOSYSTEM = {
    "specialists": [{"name": "intents"}],
    "server": {"fallback": "error"},
    "pipelines": {
        "invoice": {
            "input": {"text": "string"},
            "steps": [
                {
                    "id": "amount",
                    "kind": "tool",
                    "tool": "regex_extract",
                    "args": {"text": "{input.text}", "pattern": r"(?<=\$)[\d.]+"},
                },
                {
                    "id": "date",
                    "kind": "tool",
                    "tool": "regex_extract",
                    "args": {"text": "{input.text}", "pattern": r"\d{4}-\d\d-\d\d"},
                },
                {
                    "id": "due",
                    "kind": "tool",
                    "tool": "date",
                    "args": {"date": "{date.match}", "add_days": 30},
                },
                {
                    "id": "vat",
                    "kind": "tool",
                    "tool": "arithmetic",
                    "args": {"expression": "{amount.match} * 0.2"},
                    "when": "amount.match != null",
                },
            ],
            "output": {"due": "{due}", "vat": "{vat}"},
        }
    },
}


@pytest.fixture
def eco(tmp_path: Path) -> Path:
    path = tmp_path / "ecosystem.yaml"
    path.write_text(yaml.safe_dump(ECOSYSTEM), encoding="utf-8")
    return path


def test_run_prints_the_answer_and_the_trace(eco: Path) -> None:
    r = CliRunner().invoke(app, ["pipeline", "run", str(eco), "invoice", "-i", "Pay $$100 by 2024-01-31"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        app,
        ["pipeline", "run", str(eco), "invoice", "--input", '{"text": "Pay $100 by 2024-01-31"}', "--json"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["output"] == {"due": "2024-03-01", "vat": 20.0}
    assert [s["id"] for s in out["steps"]] == ["amount", "date", "due", "vat"]
    assert all(s["status"] == "ok" and s["kind"] == "tool" for s in out["steps"])
    r = CliRunner().invoke(app, ["pipeline", "run", str(eco), "invoice", "-i", "2024-01-31", "--trace"])
    assert r.exit_code == 0, r.output
    assert '"vat": null' in r.output and "skipped" in r.output


def test_bad_input_is_one_line(eco: Path) -> None:
    r = CliRunner().invoke(app, ["pipeline", "run", str(eco), "invoice", "-i", '{"txt": 1}'])
    assert r.exit_code == 1  # main() prints a CadreError as one line; the runner keeps the exception
    assert "pipeline 'invoice': the input has an unknown field 'txt'" in str(r.exception)
    r = CliRunner().invoke(app, ["pipeline", "run", str(eco), "invoce", "-i", "x"])
    assert r.exit_code == 1 and "did you mean invoice" in str(r.exception)


def test_show_and_check(eco: Path) -> None:
    r = CliRunner().invoke(app, ["pipeline", "show", str(eco), "invoice"])
    assert r.exit_code == 0, r.output
    assert "due: tool date <- date" in r.output
    assert "vat: tool arithmetic <- amount  when amount.match != null" in r.output
    r = CliRunner().invoke(app, ["pipeline", "show", str(eco), "invoice", "--mermaid"])
    assert r.output.startswith("flowchart TD") and "amount -.-> vat" in r.output
    r = CliRunner().invoke(app, ["check", str(eco), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["pipelines"][0]["steps"] == 4


def test_check_rejects_a_cycle(eco: Path) -> None:
    data = json.loads(json.dumps(ECOSYSTEM))
    data["pipelines"]["invoice"]["steps"][0]["args"]["text"] = "{input.text} {vat}"
    eco.write_text(yaml.safe_dump(data), encoding="utf-8")
    r = CliRunner().invoke(app, ["check", str(eco)])
    assert r.exit_code == 1
    assert "steps form a cycle: amount -> vat -> amount" in str(r.exception)
