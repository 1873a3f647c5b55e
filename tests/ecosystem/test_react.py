"""The react step: a bounded tool loop with the scripted caller (turns, tokens, time), transcript in the trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cadre.ecosystem import PipelineRunner, parse_ecosystem
from cadre.errors import ConfigError, PipelineError

from .pipelines import ecosystem
from .scripted import ScriptedModels


def _react(**options: Any) -> dict[str, Any]:
    step = {
        "id": "solve",
        "kind": "react",
        "model": "intents",
        "prompt": "{input.text}",
        "tools": ["arithmetic", "date"],
    }
    return {"steps": [{**step, **options}]}


def _run(models: ScriptedModels, **options: Any) -> Any:
    spec = parse_ecosystem(ecosystem({"r": _react(**options)}))
    return PipelineRunner(spec.pipelines, models).run("r", "What is 6 times 7, 30 days after 2024-01-31?")


def _tool(name: str, **args: Any) -> str:
    return json.dumps({"tool": name, "args": args})


def test_the_model_calls_tools_then_answers() -> None:
    models = ScriptedModels(
        {
            "intents": [
                _tool("arithmetic", expression="6*7"),
                "not json at all",
                _tool("shell", cmd="ls"),
                _tool("date", date="2024-01-31", add_days=30),
                '{"answer": "42 on 2024-03-01"}',
            ]
        }
    )
    result = _run(models)
    assert result.output == "42 on 2024-03-01" and not result.structured
    step = result.steps[0]
    transcript = step.detail["transcript"]
    assert [t.get("observation", t.get("answer")) for t in transcript] == [
        "42",
        'error: reply with one JSON object: {"tool": ..., "args": {...}} or {"answer": ...}',
        "error: no tool 'shell'; the tools are arithmetic, date",
        '"2024-03-01"',
        "42 on 2024-03-01",
    ]
    assert step.attempts == 5 and step.prompt_tokens > 0
    # the model sees each observation, and its tools are described in the system message
    last = models.calls[-1].messages
    assert last[0]["role"] == "system" and "- arithmetic(expression, round?)" in last[0]["content"]
    assert last[-1] == {"role": "user", "content": 'Observation: "2024-03-01"'}
    assert all(c.want_json for c in models.calls)


def test_a_loop_that_never_answers_is_bounded() -> None:
    forever = ScriptedModels({"intents": lambda _: _tool("arithmetic", expression="1+1")})
    with pytest.raises(PipelineError, match="step 'solve': react: no answer within 3 turns") as err:
        _run(forever, max_turns=3)
    (trace,) = err.value.steps  # type: ignore[attr-defined]
    assert trace.status == "failed" and len(trace.detail["transcript"]) == 3
    with pytest.raises(PipelineError, match="no answer within 30 tokens"):
        _run(
            ScriptedModels({"intents": lambda _: _tool("arithmetic", expression="1+1")}), max_total_tokens=30
        )
    slow = ScriptedModels({"intents": lambda _: _tool("arithmetic", expression="1")}, delay_s=0.05)
    with pytest.raises(PipelineError, match=r"no answer within 0.1 s"):
        _run(slow, timeout_s=0.1, max_turns=20)


def test_a_tool_error_is_an_observation_and_fixed_arguments_stay_fixed() -> None:
    models = ScriptedModels(
        {
            "intents": [
                _tool("arithmetic", expression="1/0"),
                _tool("date", date="2024-01-01", format="%s"),
                '{"answer": 1}',
            ]
        }
    )
    transcript = _run(models).steps[0].detail["transcript"]
    assert transcript[0]["observation"] == "error: ValueError: '1/0' divides by zero"
    assert transcript[1]["observation"] == "error: date does not take 'format' from you"


@pytest.mark.parametrize(
    ("tools", "match"),
    [
        (["regex_extract"], "needs a fixed 'pattern' that only the file may give"),
        (["http_get"], "reaches the network and is off by default"),
        (["nope"], "no tool 'nope'"),
    ],
)
def test_react_tools_are_checked_at_load(tools: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_ecosystem(ecosystem({"r": _react(tools=tools)}))
