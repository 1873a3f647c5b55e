"""The demo's composed task without models: the support pipeline in ecosystem.yaml, run by cadre.evaluate against
a generalist, per-step accuracy, the vote's trade-off from the recorded votes, and the report section."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.demo.composed import composed_section, evaluate_composed, support_pipeline
from cadre.demo.config import DemoConfig
from cadre.demo.ecosystem import write_ecosystem
from cadre.ecosystem import ModelReply, ModelRequest, PipelineRunner, load_ecosystem
from cadre.evaluate import EvalRequest, Generation, SystemSpec
from cadre.evaluate.systems import PipelineSystem
from cadre.runtime.protocol import Completion, SamplingParams, Usage
from cadre.synth import generate, get_generator, write_jsonl

HW: dict[str, Any] = {"hardware": "local", "price_per_hour": 0.1}


class _Oracle:
    """The specialists and the generalist, answering from the items' references; the first item's intent vote
    gets 3 wrong samples of 5 (the majority is wrong, so only escalation gets it right)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.messages = {r["text"].split("\n\n", 1)[0]: r for r in records}
        self.documents = {r["text"].split("\n\n", 1)[1]: r for r in records}
        self.first = records[0]["text"]

    def call(self, request: ModelRequest) -> ModelReply:
        prompt = request.messages[-1]["content"]
        if request.model in ("intents", "generalist"):
            rec = self.messages[prompt]  # the regex tool gave the message line, exactly
            right = rec["step_references"]["intent"]
            texts = [right] * request.n
            if request.model == "intents" and rec["text"] == self.first:
                texts = ["product_question"] * 3 + [right] * 2
        elif request.model == "invoices":
            fields = self.documents[prompt]["step_references"]["fields"]
            texts = [json.dumps({**fields, "total": f"{fields['total']:,.2f}"})]  # as written: "1,312.98"
        else:
            value = prompt.removeprefix("Normalize: ")
            texts = [value if "-" in value else f"{float(value.replace(',', '')):.2f}"]
        completions = [Completion(text=t, usage=Usage(10, 2), model=request.model) for t in texts]
        return ModelReply(completions, request.model)

    def close(self) -> None:
        pass


class _Generalist:
    """One prompt for everything: right but for the vendor."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.spec = SystemSpec(name="generalist", model="toy", shots=0, **HW)
        self.name = "generalist"
        self.answers = {r["text"]: {**r["answer"], "vendor": "nobody"} for r in records}

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation:
        return Generation(json.dumps(self.answers[request.text]), 300, 60, latency_s=2.0, ttft_s=None)

    def close(self) -> None:
        pass


def test_docs_show_the_support_pipeline_as_the_demo_writes_it() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "pipelines.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "regex_extract" in b]
    assert yaml.safe_load(block)["pipelines"]["support"] == support_pipeline()


def test_the_support_pipeline_against_the_generalist(tmp_path: Path) -> None:
    cfg = DemoConfig.preset(fast=True, out=tmp_path)
    assert cfg.composed_items == 1 and DemoConfig.preset(fast=False).composed_items == 8
    path = write_ecosystem(tmp_path, cfg, trained=[], generalist="gemma3-270m", routed=False)
    assert "&id" not in path.read_text()  # no YAML anchors in a file people read
    eco = load_ecosystem(path)
    support = eco.pipelines["support"]
    assert support.deps("intent") == {"message"} and support.deps("fields") == {"document"}
    assert support.deps("date") == support.deps("amount") == {"fields"}

    gen = get_generator("composed")
    records = list(generate(gen, split="test", n=4, seed=0))
    write_jsonl(tmp_path / "data" / "composed" / "test.jsonl", records)
    write_jsonl(tmp_path / "data" / "composed" / "train.jsonl", generate(gen, split="train", n=2))
    oracle = _Oracle(records)
    pipeline = PipelineSystem(
        SystemSpec(name="pipeline", kind="pipeline", pipeline="support", ecosystem="ecosystem.yaml", **HW),
        PipelineRunner(eco.pipelines, oracle),
        oracle,
    )
    res = evaluate_composed(tmp_path / "data", [_Generalist(records), pipeline], tmp_path / "run")

    assert res["n"] == 4
    assert res["systems"]["pipeline"]["metric"] == 1.0 and res["systems"]["generalist"]["metric"] == 5 / 6
    assert res["systems"]["pipeline"]["step_accuracy"] == {
        "intent": 1.0,
        "fields": 1.0,
        "date": 1.0,
        "amount": 1.0,
    }
    assert res["difference"] == pytest.approx(1 / 6) and res["ci"][0] > 0
    vote = {v["threshold"]: v for v in res["vote"]}
    assert vote[0.8]["measured"] and vote[0.8]["escalated"] == 0.25 and vote[0.8]["intent_accuracy"] == 1.0
    # at 60% the first item's 3-of-5 wrong majority is kept: one escalation fewer, one intent wrong
    assert vote[0.6]["escalated"] == 0.0 and vote[0.6]["intent_accuracy"] == 0.75
    assert vote[0.6]["metric"] == pytest.approx((3 + 5 / 6) / 4)

    section = composed_section(tmp_path.parent / "nothing")
    assert section is None
    (tmp_path / "eval" / "composed").mkdir(parents=True)
    (tmp_path / "run" / "composed.json").rename(tmp_path / "eval" / "composed" / "composed.json")
    section = composed_section(tmp_path)
    assert section is not None
    md = section.markdown()
    assert "| pipeline | 100.0% | 100.0% | 0 |" in md and "| generalist | 83.3% | 0.0% | 0 |" in md
    assert "the interval excludes zero" in md and "intent 100.0%, fields 100.0%" in md
    assert "| 60% (from the same votes) | 0.0% | 75.0% |" in md
    assert "<h2>Composed task" in section.html()
