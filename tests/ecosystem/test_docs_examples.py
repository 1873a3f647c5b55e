"""The pipeline examples in docs/pipelines.md and the README parse, and the worked example's DAG is as printed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cadre.ecosystem import parse_ecosystem, pipeline_text

ROOT = Path(__file__).resolve().parents[2]


def _yaml_blocks(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "pipelines:" in b]


def test_the_worked_example_validates_and_shows_as_documented() -> None:
    doc = ROOT / "docs" / "pipelines.md"
    data = _yaml_blocks(doc)[0]  # the second is the demo's composed pipeline (tests/demo/test_composed.py)
    spec = parse_ecosystem(data)
    shown = pipeline_text("support", spec.pipelines["support"])
    assert shown in doc.read_text(encoding="utf-8")


def test_the_readme_example_validates() -> None:
    (data,) = _yaml_blocks(ROOT / "README.md")
    parse_ecosystem(
        {
            "specialists": [{"name": "intents"}, {"name": "invoices"}],
            "generalist": {"model": "smollm2-135m"},
            **data,
        }
    )
