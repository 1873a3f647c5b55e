"""Pipelines served: model="pipeline:<name>" through the official openai client, POST /v1/pipelines/<name>:run,
/v1/models, per-step metrics, and bad input answered with OpenAI-shaped errors while the server keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from .conftest import LiveServer, small_spec

pytestmark = pytest.mark.slow

PIPELINES = {
    "triage": {
        "description": "kind of request + a computed figure",
        "steps": [
            {
                "id": "kind",
                "kind": "call",
                "model": "support",
                "prompt": "Is this about money or weather? {input.text}",
                "parse": "label",
                "labels": ["money", "weather"],
                "max_tokens": 4,
            },
            {
                "id": "amount",
                "kind": "tool",
                "tool": "regex_extract",
                "args": {"text": "{input.text}", "pattern": r"\d+(?:\.\d+)?"},
            },
            {
                "id": "hello",
                "kind": "call",
                "model": "invoices",
                "prompt": "Say hello.",
                "max_tokens": 3,
            },
        ],
        "output": {"kind": "{kind}", "amount": "{amount.match}", "hello": "{hello}"},
    },
    "calc": {
        "steps": [{"id": "v", "kind": "tool", "tool": "arithmetic", "args": {"expression": "{input.text}"}}],
    },
    "strict": {
        "steps": [
            {
                "id": "j",
                "kind": "call",
                "model": "support",
                "prompt": "{input.text}",
                "parse": "json",
                "json_schema": {
                    "type": "object",
                    "properties": {"zzz": {"type": "integer"}},
                    "required": ["zzz"],
                },
                "max_tokens": 3,
            }
        ],
    },
    "typed": {
        "input": {"n": "integer"},
        "steps": [{"id": "x", "kind": "tool", "tool": "arithmetic", "args": {"expression": "{input.n} * 2"}}],
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer(small_spec(pipelines=PIPELINES)) as live:
        yield live


def test_chat_completions_run_a_pipeline(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    r = client.chat.completions.create(
        model="pipeline:triage", messages=[{"role": "user", "content": "I paid 40 dollars twice"}]
    )
    answer = json.loads(r.choices[0].message.content or "")
    assert (
        answer["kind"] in ("money", "weather")
        and answer["amount"] == "40"
        and isinstance(answer["hello"], str)
    )
    assert r.model == "pipeline:triage"
    cadre = (r.model_extra or {})["cadre"]
    steps = {s["id"]: s for s in cadre["steps"]}
    assert steps["kind"]["model"] == "support" and steps["kind"]["prompt_tokens"] > 0
    assert steps["amount"]["kind"] == "tool" and steps["hello"]["model"] == "invoices"
    assert r.usage is not None and r.usage.completion_tokens >= 2
    ids = [m.id for m in client.models.list().data]
    assert {"pipeline:triage", "pipeline:calc", "support"} <= set(ids)


def test_the_run_endpoint_and_metrics(server: LiveServer) -> None:
    r = httpx.post(f"{server.url}/v1/pipelines/calc:run", json={"input": "(2 + 3) * 4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"] == 20 and body["steps"][0]["status"] == "ok"
    r = httpx.post(f"{server.url}/v1/pipelines/typed:run", json={"input": {"n": 21}})
    assert r.json()["output"] == 42
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'cadre_pipeline_steps_total{pipeline="calc",status="ok",step="v"}' in metrics
    assert "cadre_pipeline_step_seconds_bucket" in metrics


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/pipelines/nope:run", {"input": "x"}, 404, "unknown pipeline 'nope'"),
        ("/v1/pipelines/typed:run", {"input": {"n": "two"}}, 400, "input field 'n' should be integer"),
        ("/v1/pipelines/typed:run", {"inputs": {}}, 400, "input: Field required"),
        ("/v1/pipelines/calc:run", {"input": "__import__('os')"}, 400, "tool 'arithmetic' failed"),
        ("/v1/pipelines/strict:run", {"input": "hi"}, 400, "step 'j': support:"),
    ],
)
def test_bad_input_is_an_openai_error_and_the_server_keeps_serving(
    server: LiveServer, path: str, body: dict[str, object], status: int, message: str
) -> None:
    r = httpx.post(f"{server.url}{path}", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"] and "Traceback" not in r.text
    assert httpx.post(f"{server.url}/v1/pipelines/calc:run", json={"input": "1+1"}).json()["output"] == 2


def test_chat_errors(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    with pytest.raises(openai.BadRequestError, match="JSON object"):
        client.chat.completions.create(model="pipeline:typed", messages=[{"role": "user", "content": "21"}])
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(
            model="pipeline:calc", messages=[{"role": "user", "content": "1"}], stream=True
        )
    r = client.chat.completions.create(
        model="pipeline:typed", messages=[{"role": "user", "content": '{"n": 2}'}]
    )
    assert r.choices[0].message.content == "4"
