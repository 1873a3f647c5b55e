"""The executor's mechanics with a scripted model caller: order, concurrency, parsing, escalation, tools, trace."""

from __future__ import annotations

import copy
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cadre.ecosystem import PipelineRunner, parse_ecosystem
from cadre.errors import BackendError, PipelineError

from .pipelines import ecosystem, support_pipeline
from .scripted import ScriptedModels

MESSAGE = "I was charged twice for invoice INV-7: $1,250.00 on 5 March 2024. Please refund one."


def _runner(pipelines: dict[str, Any], models: ScriptedModels, **kw: Any) -> PipelineRunner:
    return PipelineRunner(parse_ecosystem(ecosystem(pipelines)).pipelines, models, **kw)


def test_the_composed_task_runs_and_is_traced() -> None:
    models = ScriptedModels(
        {"intents": "refund", "invoices": '{"amount": "1250.00", "date": "5 March 2024"}'}
    )
    result = _runner({"support": support_pipeline()}, models).run("support", MESSAGE)
    assert result.output == {"intent": "refund", "date": "2024-03-05", "amount": 1250.0}
    assert result.structured
    assert [s.id for s in result.steps] == ["intent", "fields", "due", "total"]
    first = result.steps[0]
    assert (first.kind, first.model, first.attempts, first.status) == ("call", "intents", 1, "ok")
    assert first.prompt_tokens > 0 and first.completion_tokens == 1 and first.cost_usd == pytest.approx(0.001)
    assert result.cost_usd == pytest.approx(0.002)
    assert result.steps[2].detail == {"tool": "date"}
    # the label set and the JSON schema reach the model caller (it constrains decoding with them)
    assert models.calls[0].labels == ("billing", "refund", "other")
    assert models.calls[1].want_json and models.calls[1].json_schema is not None
    as_dict = result.to_dict()
    assert as_dict["steps"][1]["model"] == "invoices" and len(as_dict["run_id"]) == 16


def test_when_false_skips_the_step_and_those_reading_it() -> None:
    models = ScriptedModels({"intents": "other", "invoices": "{}"})
    result = _runner({"support": support_pipeline()}, models).run("support", "hello there")
    assert [s.status for s in result.steps] == ["ok", "skipped", "skipped", "skipped"]
    assert result.steps[2].detail == {"because": "fields skipped"}
    assert result.output == {"intent": "other", "date": None, "amount": None}
    assert len(models.calls) == 1


def _fan_out() -> dict[str, Any]:
    steps = [
        {"id": f"s{i}", "kind": "call", "model": "intents", "prompt": "{input.text} " + str(i)}
        for i in range(3)
    ]
    steps.append({"id": "join", "kind": "call", "model": "invoices", "prompt": "{s0} {s1} {s2}"})
    return {"steps": steps}


def test_independent_steps_run_concurrently() -> None:
    models = ScriptedModels({"intents": "x", "invoices": "done"}, delay_s=0.3)
    t0 = time.perf_counter()
    result = _runner({"fan": _fan_out()}, models).run("fan", "go")
    wall = time.perf_counter() - t0
    assert result.output == "done"
    assert models.max_active == 3
    assert wall < 0.3 * 4 * 0.75, f"fan-out of 3 + join took {wall:.2f}s; sequential would be 1.2s"
    assert models.calls[-1].messages[-1]["content"] == "x x x"


def test_a_bad_answer_is_retried_then_escalated_to_the_generalist() -> None:
    p = support_pipeline()
    p["steps"][1].update(on_failure="retry", retries=2)
    models = ScriptedModels(
        {
            "intents": "billing",
            "invoices": ["not json", '{"amount": "5"}', '{"amount": "5", "date": "2024-01-02"}'],
        }
    )
    result = _runner({"support": p}, models).run("support", MESSAGE)
    fields = result.steps[1]
    assert fields.attempts == 3 and len(fields.escalations) == 2
    assert "not JSON" in fields.escalations[0] and "lacks the field 'date'" in fields.escalations[1]
    assert models.calls[2].params.temperature > 0  # a retry samples; a greedy retry would repeat itself

    p = support_pipeline()  # on_failure: escalate
    models = ScriptedModels(
        {"intents": "billing", "invoices": "no idea", "generalist": '{"amount": "7", "date": "2024-01-02"}'}
    )
    result = _runner({"support": p}, models).run("support", MESSAGE)
    fields = result.steps[1]
    assert fields.model == "generalist" and fields.attempts == 2
    assert fields.escalations == ["generalist (invoices: the answer is not JSON: 'no idea')"]
    assert result.output["amount"] == 7


def test_an_unparsable_answer_fails_with_the_step_named() -> None:
    p = support_pipeline()
    p["steps"][1]["on_failure"] = "fail"
    models = ScriptedModels({"intents": "billing", "invoices": "{broken"})
    with pytest.raises(
        PipelineError, match=r"pipeline 'support': step 'fields': invoices: the answer is not JSON"
    ) as err:
        _runner({"support": p}, models).run("support", MESSAGE)
    steps = err.value.steps  # type: ignore[attr-defined]
    assert [s.status for s in steps] == ["ok", "failed"]


def test_a_label_outside_the_set_fails() -> None:
    models = ScriptedModels({"intents": "shipping", "invoices": "{}"})
    with pytest.raises(
        PipelineError, match=r"step 'intent': intents: the answer 'shipping' is not one of the labels"
    ):
        _runner({"support": support_pipeline()}, models).run("support", MESSAGE)


def test_a_model_failure_stays_a_backend_error() -> None:
    def broken(_: Any) -> str:
        raise BackendError("endpoint down")

    with pytest.raises(BackendError, match="step 'intent': endpoint down"):
        _runner({"support": support_pipeline()}, ScriptedModels({"intents": broken})).run("support", MESSAGE)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"txt": "x"}, "unknown field 'txt'"),
        ({}, "lacks the field 'text'"),
        ({"text": 3}, "input field 'text' should be string, not int"),
        ([1], "must be a JSON object"),
    ],
)
def test_an_input_outside_the_schema_is_refused(data: Any, match: str) -> None:
    with pytest.raises(PipelineError, match=match):
        _runner({"support": support_pipeline()}, ScriptedModels({})).run("support", data)


def test_unknown_pipeline_suggests_names() -> None:
    from cadre.errors import NotFoundError

    with pytest.raises(NotFoundError, match="did you mean support"):
        _runner({"support": support_pipeline()}, ScriptedModels({})).run("suport", "x")


def _tools_pipeline(extra: dict[str, Any]) -> dict[str, Any]:
    return {"input": {"text": "string", "days": "integer"}, "steps": [extra]}


@pytest.mark.parametrize(
    ("step", "data", "expected"),
    [
        ({"tool": "arithmetic", "args": {"expression": "({input.days} + 2) * 1.5"}}, {"days": 2}, 6.0),
        (
            {"tool": "date", "args": {"date": "{input.text}", "add_days": "{input.days}"}},
            {"text": "March 30, 2024", "days": 3},
            "2024-04-02",
        ),
        (
            {"tool": "regex_extract", "args": {"text": "{input.text}", "pattern": r"INV-(\d{1,6})"}},
            {"text": "see INV-77 and INV-8"},
            {"match": "INV-77", "groups": ["77"]},
        ),
    ],
)
def test_builtin_tools(step: dict[str, Any], data: dict[str, Any], expected: Any) -> None:
    runner = _runner({"t": _tools_pipeline({"id": "t", "kind": "tool", **step})}, ScriptedModels({}))
    assert runner.run("t", {"text": "", "days": 0, **data}).output == expected


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("__import__('os')", "only numbers"),
        ("1/0", "divides by zero"),
        ("2**1000", "exponent too large"),
        ("(9**64)**64", "exponent too large"),
        ("(", "not an arithmetic"),
    ],
)
def test_a_tool_that_raises_is_a_one_line_step_error(expression: str, match: str) -> None:
    step = {"id": "calc", "kind": "tool", "tool": "arithmetic", "args": {"expression": "{input.text}"}}
    runner = _runner({"t": _tools_pipeline(step)}, ScriptedModels({}))
    with pytest.raises(PipelineError, match=rf"step 'calc': tool 'arithmetic' failed: ValueError: .*{match}"):
        runner.run("t", {"text": expression, "days": 0})


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"rate=1.08"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_get_reaches_only_allowed_hosts(http_server: str) -> None:
    step = {
        "id": "web",
        "kind": "tool",
        "tool": "http_get",
        "args": {"url": "{input.text}"},
        "allowed_hosts": [http_server],
    }
    runner = _runner({"t": _tools_pipeline(step)}, ScriptedModels({}))
    assert runner.run("t", {"text": f"http://{http_server}/rate", "days": 0}).output == {
        "status": 200,
        "text": "rate=1.08",
    }
    with pytest.raises(PipelineError, match="is not in the step's allowed_hosts"):
        runner.run("t", {"text": "http://localhost:1/x", "days": 0})
    with pytest.raises(PipelineError, match="is not an http"):
        runner.run("t", {"text": "file:///etc/passwd", "days": 0})


class FakePassage:
    def __init__(self, i: int) -> None:
        from cadre.knowledge import Chunk

        self.chunk = Chunk(
            chunk_id=f"c{i}", source="handbook.md", start=i * 10, end=i * 10 + 9, text=f"rule {i}"
        )
        self.score = 1.0 / (i + 1)

    def citation(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk.chunk_id, "source": self.chunk.source, "score": self.score}


class FakeCorpus:
    def __init__(self) -> None:
        self.queries: list[tuple[str, int]] = []

    def search(self, query: str, k: int = 5) -> list[FakePassage]:
        self.queries.append((query, k))
        return [FakePassage(i) for i in range(k)]


def test_retrieve_carries_citations_to_the_result() -> None:
    corpus = FakeCorpus()
    p = {
        "steps": [
            {"id": "docs", "kind": "retrieve", "corpus": "handbook", "query": "{input.text}", "top_k": 2},
            {
                "id": "answer",
                "kind": "call",
                "model": "intents",
                "prompt": "{docs.passages}\n\nQ: {input.text}",
            },
        ]
    }
    models = ScriptedModels({"intents": "see [1]"})
    runner = _runner({"qa": p}, models, open_corpus=lambda name: corpus)
    result = runner.run("qa", "refund policy?")
    assert corpus.queries == [("refund policy?", 2)]
    assert models.calls[0].messages[-1]["content"] == "[1] rule 0\n\n[2] rule 1\n\nQ: refund policy?"
    assert [c["chunk_id"] for c in result.citations] == ["c0", "c1"]
    assert result.citations[0]["corpus"] == "handbook"
    assert result.output == "see [1]" and not result.structured


def test_a_missing_corpus_fails_when_the_runner_is_built(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadre.errors import NotFoundError

    monkeypatch.setenv("CADRE_HOME", str(tmp_path))
    p = {"steps": [{"id": "docs", "kind": "retrieve", "corpus": "nowhere", "query": "{input.text}"}]}
    with pytest.raises(NotFoundError, match="nowhere"):
        _runner({"qa": copy.deepcopy(p)}, ScriptedModels({}))


def _vote_pipeline(**options: Any) -> dict[str, Any]:
    step = {
        "id": "intent",
        "kind": "vote",
        "model": "intents",
        "prompt": "{input.text}",
        "parse": "label",
        "labels": ["billing", "refund", "other"],
        "k": 5,
        **options,
    }
    return {"steps": [step]}


def test_vote_keeps_the_majority_when_enough_samples_agree() -> None:
    models = ScriptedModels({"intents": ["refund", "Refund.", "billing", "refund", "no idea"]})
    result = _runner({"v": _vote_pipeline(threshold=0.6)}, models).run("v", MESSAGE)
    assert result.output == "refund"
    step = result.steps[0]
    assert step.detail == {
        "k": 5,
        "agreement": 0.6,
        "votes": {'"billing"': 1, '"refund"': 3},
        "majority": "refund",
    }
    assert result.outputs == {"intent": "refund"}
    assert step.escalations == [] and step.attempts == 1
    assert len(models.calls) == 1 and models.calls[0].n == 5  # one batched request for the k samples
    assert models.calls[0].params.temperature == 0.7


def test_vote_escalates_when_the_samples_disagree() -> None:
    models = ScriptedModels(
        {"intents": ["refund", "billing", "other", "refund", "billing"], "generalist": "billing"}
    )
    result = _runner({"v": _vote_pipeline(threshold=0.6)}, models).run("v", MESSAGE)
    assert result.output == "billing"
    step = result.steps[0]
    assert step.detail["majority"] == "refund"  # the first of the tied answers, kept for a lower threshold
    assert step.model == "generalist" and step.attempts == 2
    assert step.escalations == ["generalist (intents: 40% of 5 samples agree (threshold 60%))"]
    assert models.calls[1].n == 1 and models.calls[1].params.temperature == 0.0

    models = ScriptedModels({"intents": ["refund", "billing", "other", "refund", "billing"]})
    with pytest.raises(PipelineError, match="40% of 5 samples agree"):
        _runner({"v": _vote_pipeline(on_disagreement="fail")}, models).run("v", MESSAGE)


def test_a_condition_may_read_a_skipped_step_and_after_only_orders() -> None:
    p = support_pipeline()
    p["steps"].append(
        {
            "id": "fallback",
            "kind": "call",
            "model": "generalist",
            "prompt": "{input.text}",
            "when": "fields == null",
        }
    )
    p["steps"].append(
        {"id": "last", "kind": "tool", "tool": "arithmetic", "args": {"expression": "1"}, "after": ["total"]}
    )
    models = ScriptedModels({"intents": "other", "generalist": "a general answer"})
    result = _runner({"support": p}, models).run("support", "hello")
    status = {s.id: s.status for s in result.steps}
    assert status == {
        "intent": "ok",
        "fields": "skipped",
        "due": "skipped",
        "total": "skipped",
        "fallback": "ok",
        "last": "ok",
    }


def test_an_infrastructure_error_keeps_its_type() -> None:
    def slow(_: Any) -> str:
        raise TimeoutError

    with pytest.raises(TimeoutError) as err:  # served: a 504, not a pipeline's 400
        _runner({"support": support_pipeline()}, ScriptedModels({"intents": slow})).run("support", MESSAGE)
    assert [s.status for s in err.value.steps] == ["failed"]  # type: ignore[attr-defined]
