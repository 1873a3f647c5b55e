"""An ecosystem's pipelines run in this process, and described: what ``cadre pipeline run|show`` call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cadre.ecosystem.executor import PipelineResult, PipelineRunner
from cadre.ecosystem.graph import pipeline_mermaid, pipeline_text
from cadre.ecosystem.models import LocalModels
from cadre.ecosystem.spec import EcosystemSpec, load_ecosystem
from cadre.errors import PipelineError, did_you_mean

__all__ = ["describe_pipeline", "parse_input", "run_local"]


def parse_input(text: str) -> Any:
    """A pipeline input from the command line: a JSON object, or plain text (for a one-text-field input)."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as err:
            raise PipelineError(f"--input is not valid JSON: {err}") from None
    return text


def _spec(ecosystem: EcosystemSpec | str | Path) -> EcosystemSpec:
    return ecosystem if isinstance(ecosystem, EcosystemSpec) else load_ecosystem(ecosystem)


def run_local(
    ecosystem: EcosystemSpec | str | Path,
    name: str,
    data: Any,
    *,
    backend_options: Mapping[str, Any] | None = None,
) -> PipelineResult:
    """Load the ecosystem's models in this process and run pipeline ``name`` once on ``data``."""
    spec = _spec(ecosystem)
    if name not in spec.pipelines:
        raise did_you_mean(name, spec.pipelines, kind="pipeline")
    models = LocalModels(spec, backend_options=backend_options)
    runner = PipelineRunner({name: spec.pipelines[name]}, models)
    try:
        return runner.run(name, data)
    finally:
        runner.close()
        models.close()


def describe_pipeline(ecosystem: EcosystemSpec | str | Path, name: str) -> dict[str, Any]:
    """A pipeline's input, steps (kind, what it waits for, its condition), its DAG as text and as Mermaid."""
    spec = _spec(ecosystem)
    if name not in spec.pipelines:
        raise did_you_mean(name, spec.pipelines, kind="pipeline")
    p = spec.pipelines[name]
    steps = [
        {"id": s.id, "kind": s.kind, "after": sorted(p.deps(s.id)), "when": s.when, **_target(s)}
        for s in p.steps
    ]
    return {
        "name": name,
        "description": p.description,
        "input": p.input,
        "structured": p.is_structured(),
        "steps": steps,
        "text": pipeline_text(name, p),
        "mermaid": pipeline_mermaid(name, p),
    }


def _target(step: Any) -> dict[str, Any]:
    for key in ("model", "corpus", "tool"):
        if hasattr(step, key):
            return {key: getattr(step, key)}
    return {}
