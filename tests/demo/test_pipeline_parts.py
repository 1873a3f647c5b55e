"""The demo's parts without models: config presets, the step manifest, answer reuse, the ecosystem file,
and the report built from real ``cadre.evaluate`` runs of two simple deterministic answerers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cadre.demo import DemoConfig
from cadre.demo.ecosystem import write_ecosystem
from cadre.demo.evaluation import CachedSystem, task_spec
from cadre.demo.manifest import Manifest, StepRecord, fingerprint
from cadre.demo.report import table1, write_demo_report
from cadre.demo.steps import SkipStep, StepRunner
from cadre.errors import ConfigError, DataError
from cadre.evaluate import run_eval
from cadre.evaluate.systems import EvalRequest, Generation, SystemSpec
from cadre.runtime.protocol import SamplingParams
from cadre.serve import load_ecosystem
from cadre.synth import write_task


def test_presets_and_strict_config(tmp_path: Path) -> None:
    fast, full = DemoConfig.preset(fast=True), DemoConfig.preset(fast=False, out=tmp_path)
    assert fast.fast and not full.fast and full.out == tmp_path
    assert fast.sizes.test < full.sizes.test and fast.train_budget == "4k tokens"
    with pytest.raises(ConfigError, match="not understood"):
        DemoConfig.preset(fast=True, train_budget="a while")
    with pytest.raises(Exception, match="extra"):
        DemoConfig.model_validate({"bogus": 1})


def test_manifest_reuses_a_step_only_with_same_fingerprint_and_outputs(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    m.record(StepRecord(name="a", fingerprint="f1", status="done", outputs=["a.txt"]))
    again = Manifest(tmp_path)  # read back from disk
    assert again.is_done("a", "f1")
    assert not again.is_done("a", "f2")
    (tmp_path / "a.txt").unlink()
    assert not again.is_done("a", "f1")
    assert fingerprint({"x": 1}, [2]) == fingerprint({"x": 1}, [2]) != fingerprint({"x": 2}, [2])
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(DataError, match="delete it"):
        Manifest(tmp_path)


def test_runner_skips_done_steps_records_skips_and_failures(tmp_path: Path) -> None:
    cfg = DemoConfig.preset(fast=True, out=tmp_path)
    calls: list[str] = []

    def work() -> tuple[list[Path], dict[str, Any], str]:
        calls.append("work")
        p = tmp_path / "out.txt"
        p.write_text("done")
        return [p], {"n": 1}, "wrote it"

    r = StepRunner(cfg, Console(quiet=True))
    assert r.step("s", {"k": 1}, work).status == "done"
    assert r.step("s", {"k": 1}, work).status == "done"
    assert calls == ["work"]  # reused
    r2 = StepRunner(cfg, Console(quiet=True))  # a new run reads the manifest
    r2.step("s", {"k": 1}, work)
    assert calls == ["work"]
    r2.step("s", {"k": 2}, work)  # settings changed: redone
    assert calls == ["work", "work"]

    def skip() -> tuple[list[Path], dict[str, Any], str]:
        raise SkipStep("part missing")

    def fail() -> tuple[list[Path], dict[str, Any], str]:
        raise ConfigError("bad setting")

    assert r2.step("t", 1, skip).status == "skipped"
    rec = r2.step("u", 1, fail)
    assert rec.status == "failed" and "bad setting" in rec.note
    assert json.loads((tmp_path / "manifest.json").read_text())["steps"]["t"]["note"] == "part missing"


class _Answerer:
    """A deterministic system for tests: answers from the record through ``fn`` and counts its calls."""

    def __init__(self, name: str, fn: Any, *, latency: float) -> None:
        self.spec = SystemSpec(name=name, model="toy", hardware="local", price_per_hour=0.1, shots=0)
        self.name = name
        self.fn = fn
        self.latency = latency
        self.calls = 0

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation:
        self.calls += 1
        time.sleep(self.latency)  # busy like a model: the cost comes from the run's wall time
        messages = request.build(self.spec)
        return Generation(
            text=self.fn(messages[-1]["content"]),
            prompt_tokens=10,
            completion_tokens=2,
            latency_s=self.latency,
            ttft_s=None,
        )

    def close(self) -> None:
        pass


def test_cached_system_answers_a_repeated_request_from_memory() -> None:
    inner = _Answerer("s", lambda text: text.upper(), latency=0.5)
    cached = CachedSystem(inner)
    req = EvalRequest(text="hi", build=lambda spec: [{"role": "user", "content": "hi"}])
    a = cached.generate(req, SamplingParams(max_tokens=4))
    a.latency_s += 1.0  # callers (the routed system) adjust their copy
    b = cached.generate(req, SamplingParams(max_tokens=4))
    assert inner.calls == 1 and cached.hits == 1
    assert b.text == "HI" and b.latency_s == 0.5 and b.reused and not a.reused
    fresh = EvalRequest(text="hi", build=req.build, fresh=True)  # the runner's one-at-a-time probe
    assert not cached.generate(fresh, SamplingParams(max_tokens=4)).reused and inner.calls == 2
    inner.calls = 1
    cached.generate(req, SamplingParams(max_tokens=5))  # other decoding: a new generation
    assert inner.calls == 2


def _intent_of(text: str, answers: dict[str, str]) -> str:
    return answers.get(text, "order_status")


def test_report_from_real_evaluation_runs(tmp_path: Path) -> None:
    """Two answerers run through cadre.evaluate on generated intents: one always right, one mostly wrong;
    the report must show a significant advantage, costs, the ratio, and an honest verdict."""
    cfg = DemoConfig.preset(fast=True, out=tmp_path, tasks=["intents"])
    write_task("intents", tmp_path / "data" / "intents", 40, 4, 30, seed=0)
    spec = task_spec("intents", tmp_path / "data", shots=0)
    gold = {
        json.loads(line)["text"]: json.loads(line)["label"]
        for line in (tmp_path / "data" / "intents" / "test.jsonl").read_text().splitlines()
    }
    specialist = _Answerer("specialist", lambda t: gold[t], latency=0.05)
    generalist = _Answerer("generalist", lambda t: "order_status", latency=0.2)
    run_eval(
        spec,
        [generalist, specialist],
        tmp_path / "eval" / "intents",
        baseline="generalist",
        progress=False,
        concurrency=6,
        latency_probe=2,
    )

    rows = table1(tmp_path, ["intents", "invoices"])
    assert [r.task for r in rows] == ["intents"]  # invoices was not evaluated: left out, not invented
    row = rows[0]
    assert row.specialist == 1.0 and row.generalist is not None and row.generalist < 0.5
    assert row.significant and row.low is not None and row.low > 0
    # same machine, 0.2 s vs 0.05 s per request (6 in flight: both from the wall time of 5 rounds)
    assert row.cost_ratio == pytest.approx(4.0, rel=0.25)
    assert row.specialist_p50_solo_s == pytest.approx(0.05, abs=0.04)

    r = StepRunner(cfg, Console(quiet=True))
    r.manifest.record(StepRecord(name="eval-intents", fingerprint="x", status="done", note="toy"))
    result = write_demo_report(r, generalist="toy", generalist_why="test", price_per_hour=0.1)
    md = result["md"].read_text()
    assert "the specialist beats the generalist" in md and "excludes zero" in md
    assert f"{row.cost_ratio:.1f}×" in md and "--fast" in md and "one at a time" in md
    page = result["html"].read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "Audit of the paper" in page
    # Table 1 priced at deployment scale, labelled as a projection
    assert "## At deployment scale (projected, not measured)" in md and "1,000,000 requests/month" in md
    assert "At deployment scale (projected, not measured)</h2>" in page


def test_report_says_so_when_the_advantage_is_not_shown(tmp_path: Path) -> None:
    cfg = DemoConfig.preset(fast=False, out=tmp_path, tasks=["intents"])
    write_task("intents", tmp_path / "data" / "intents", 40, 4, 12, seed=1)
    spec = task_spec("intents", tmp_path / "data", shots=0)
    gold = {
        json.loads(line)["text"]: json.loads(line)["label"]
        for line in (tmp_path / "data" / "intents" / "test.jsonl").read_text().splitlines()
    }
    texts = sorted(gold)
    # both right on the same 8 of 12 items: no difference at all
    answer = lambda t: gold[t] if texts.index(t) < 8 else "none"  # noqa: E731
    run_eval(
        spec,
        [_Answerer("generalist", answer, latency=0.3), _Answerer("specialist", answer, latency=0.3)],
        tmp_path / "eval" / "intents",
        baseline="generalist",
        progress=False,
    )
    r = StepRunner(cfg, Console(quiet=True))
    md = write_demo_report(r, generalist="toy", generalist_why="test", price_per_hour=0.1)["md"].read_text()
    assert "not shown" in md and "includes zero" in md
    assert "beats" not in md


def test_ecosystem_file_validates_with_the_serve_spec(tmp_path: Path) -> None:
    cfg = DemoConfig.preset(fast=True, out=tmp_path)
    (tmp_path / "specialists").mkdir()
    (tmp_path / "specialists" / "intents.gguf").write_bytes(b"GGUF")
    path = write_ecosystem(tmp_path, cfg, trained=["intents"], generalist="gemma3-270m", routed=False)
    eco = load_ecosystem(path)
    assert [s.name for s in eco.specialists] == ["intents", "invoices", "normalize"]
    intents = eco.specialist("intents")
    assert intents is not None and intents.adapter == "specialists/intents.gguf"
    assert eco.resolve(intents.adapter) == (tmp_path / "specialists" / "intents.gguf").resolve()
    assert eco.specialist("invoices").adapter is None  # type: ignore[union-attr]
    assert eco.generalist is not None and eco.generalist.model == "gemma3-270m"
    assert len(intents.examples) >= 8 and eco.router.path is None


def test_training_runs_in_a_child_process_and_its_errors_come_back_typed(tmp_path: Path) -> None:
    from cadre.demo.training import TrainingChild
    from cadre.errors import DataError
    from cadre.train import TrainConfig

    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": "not a conversation"}\n', encoding="utf-8")
    cfg = TrainConfig.model_validate({"base": "smollm2-135m", "data": data, "out": tmp_path / "spec"})
    with TrainingChild(Console(quiet=True)) as child:
        pids = []
        for label in ("train-x", "train-y"):  # one child serves one request after another
            with pytest.raises(
                DataError, match=r"train\.jsonl"
            ):  # raised in the child, re-raised as its class
                child.train(
                    cfg.model_dump(mode="json"), resume=False, export_to=tmp_path / "s.gguf", label=label
                )
            pids.append(child.pid)
        assert pids[0] is not None and pids[0] == pids[1]
    assert child.pid is None  # the block's end stopped it
    assert not list(tmp_path.glob(".train-*"))  # the request and result files are cleaned up
