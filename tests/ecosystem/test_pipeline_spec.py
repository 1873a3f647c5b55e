"""The pipelines: section: closed step kinds, references checked at load, errors naming the key path, no cycles."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cadre.ecosystem import parse_ecosystem, pipeline_mermaid, pipeline_text
from cadre.errors import ConfigError

from .pipelines import ecosystem, support_pipeline


def _bad(pipeline: dict[str, Any], match: str, *, generalist: bool = True) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_ecosystem(ecosystem({"support": pipeline}, generalist=generalist), source="eco.yaml")


def test_a_valid_pipeline_loads_with_its_dag() -> None:
    spec = parse_ecosystem(ecosystem({"support": support_pipeline()}))
    p = spec.pipelines["support"]
    assert p.deps("intent") == frozenset()
    assert p.deps("fields") == {"intent"}
    assert p.deps("due") == {"fields"}
    assert p.is_structured()
    text = pipeline_text("support", p)
    assert "fields: call invoices, parse json, on failure escalate <- intent  when intent in" in text
    assert "intent -.-> fields" in pipeline_mermaid("support", p)


def test_unknown_keys_are_rejected_with_their_path() -> None:
    p = support_pipeline()
    p["steps"][0]["temprature"] = 0.2
    _bad(p, r"eco.yaml: pipelines.support.steps.0.call.temprature: unknown key")


def test_step_kinds_are_a_closed_set() -> None:
    p = support_pipeline()
    p["steps"][0]["kind"] = "python"
    _bad(p, r"pipelines.support.steps.0: .*'call', 'vote', 'react', 'retrieve', 'tool'")


def test_cycles_are_rejected() -> None:
    p = support_pipeline()
    p["steps"][0]["prompt"] = "{input.text} {total}"
    _bad(p, r"steps form a cycle: intent -> total -> fields -> intent")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda p: p["steps"][2]["args"].update(date="{fields.when}"),
            r"steps.2.args.date: \{fields.when\}: 'fields' declares no field 'when'",
        ),
        (
            lambda p: p["steps"][1].update(prompt="{nobody}"),
            r"steps.1.prompt: \{nobody\}: no input or step named 'nobody'",
        ),
        (
            lambda p: p["steps"][1].update(prompt="{input.text.__class__}"),
            r"steps.1.prompt: .*is not a reference",
        ),
        (lambda p: p["steps"][2].update(tool="shell"), r"steps.2.tool: no tool 'shell'"),
        (
            lambda p: p["steps"][2]["args"].update(extra="1"),
            r"steps.2.args: tool 'date' takes no argument 'extra'",
        ),
        (lambda p: p["steps"][1].update(when="intent = 'x'"), r"steps.1.when: when: "),
        (lambda p: p["steps"][1].update(after=["ghost"]), r"steps.1.after: no step 'ghost'"),
        (lambda p: p["steps"][3].update(id="intent"), r"steps.3.id: 'intent' is used twice"),
        (lambda p: p["steps"][0].update(labels=[]), r"parse: label needs labels"),
        (
            lambda p: p["steps"][0].update(model="nobody"),
            r"pipelines.support.steps.0.model: no model 'nobody'",
        ),
        (
            lambda p: p.update(output={"x": "{intent.label}"}),
            r"output.x: \{intent.label\}: 'intent' declares no field",
        ),
        (
            lambda p: p["steps"].append(
                {"id": "web", "kind": "tool", "tool": "http_get", "args": {"url": "{input.text}"}}
            ),
            r"http_get' reaches the network and is off by default; list the hosts",
        ),
        (
            lambda p: p["steps"].append(
                {
                    "id": "rx",
                    "kind": "tool",
                    "tool": "regex_extract",
                    "args": {"text": "{input.text}", "pattern": "(a"},
                }
            ),
            r"args.pattern: not a regular expression",
        ),
        (
            lambda p: p["steps"].append({"id": "r", "kind": "retrieve", "corpus": "../etc", "query": "q"}),
            r"invalid corpus name",
        ),
    ],
)
def test_bad_references_name_the_key(change: Any, match: str) -> None:
    p = copy.deepcopy(support_pipeline())
    change(p)
    _bad(p, match)


def test_escalation_needs_a_generalist() -> None:
    _bad(support_pipeline(), r"steps.1.on_failure: escalate needs a generalist", generalist=False)


def test_a_regex_pattern_is_a_fixed_value_not_a_template() -> None:
    p = support_pipeline()
    p["steps"].append(
        {
            "id": "rx",
            "kind": "tool",
            "tool": "regex_extract",
            "args": {"text": "{input.text}", "pattern": r"\d{2,4}"},
        }
    )
    spec = parse_ecosystem(ecosystem({"support": p}))
    assert spec.pipelines["support"].deps("rx") == frozenset()
