"""One real-model smoke test: a pipeline on the bundled SmolLM2 through LocalModels (llama.cpp, a label grammar)."""

from __future__ import annotations

import pytest

from cadre.ecosystem import LocalModels, PipelineRunner, parse_ecosystem

pytestmark = pytest.mark.slow


def test_a_pipeline_runs_on_a_real_model() -> None:
    spec = parse_ecosystem(
        {
            "specialists": [{"name": "triage", "system_prompt": "Answer with one word."}],
            "server": {"fallback": "error"},
            "pipelines": {
                "p": {
                    "steps": [
                        {
                            "id": "kind",
                            "kind": "call",
                            "model": "triage",
                            "prompt": "Is this about money or weather? {input.text}",
                            "parse": "label",
                            "labels": ["money", "weather"],
                            "max_tokens": 4,
                        },
                        {"id": "a", "kind": "call", "model": "triage", "prompt": "Say hi.", "max_tokens": 3},
                        {"id": "b", "kind": "call", "model": "triage", "prompt": "Say bye.", "max_tokens": 3},
                    ],
                    "output": {"kind": "{kind}", "a": "{a}", "b": "{b}"},
                }
            },
        }
    )
    models = LocalModels(spec)
    runner = PipelineRunner(spec.pipelines, models)
    try:
        result = runner.run("p", "My invoice of $40 was charged twice.")
    finally:
        runner.close()
        models.close()
    assert result.output["kind"] in ("money", "weather")  # the label grammar makes any answer parse
    assert isinstance(result.output["a"], str) and isinstance(result.output["b"], str)
    for step in result.steps:
        assert step.status == "ok" and step.model == "triage" and step.attempts == 1
        assert step.prompt_tokens > 5 and 1 <= step.completion_tokens <= 4
