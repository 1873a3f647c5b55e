"""Issue 16, findings 4-6: an API that never silently ignores what it was asked, a shutdown that finishes what it
started, and client-side problems that are never counted or logged as server failures."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from .conftest import LiveServer, small_spec

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


class Grab(logging.Handler):
    """Collects records at WARNING and above from the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def srv() -> Iterator[LiveServer]:
    spec = small_spec(
        server={"max_prompt_chars": 40_000, "max_request_bytes": 200_000, "max_tokens_limit": 1024}
    )
    with LiveServer(spec) as server:
        yield server


@pytest.fixture
def grab() -> Iterator[Grab]:
    handler = Grab()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "asyncio", "cadre.serve")]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)


def oa(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none-needed", max_retries=0, timeout=120)


def statuses(server: LiveServer) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("cadre_requests_total{"):
            status = line.split('status="')[1].split('"')[0]
            out[status] = out.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def fallbacks(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith("cadre_fallbacks_total{")
    )


# -- finding 6: client problems are not server failures -------------------------------------------------------


def test_a_client_disconnect_is_a_499_logged_quietly(srv: LiveServer, grab: Grab) -> None:
    before = statuses(srv)
    body = {"model": "generalist", "prompt": COUNTING, "max_tokens": 200}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{srv.url}/v1/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 30
    while statuses(srv).get("499", 0) == before.get("499", 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = statuses(srv)
    assert after.get("499", 0) == before.get("499", 0) + 1
    assert after.get("500", 0) == before.get("500", 0)
    assert not [r for r in grab.records if r.levelno >= logging.ERROR], [r.getMessage() for r in grab.records]


@pytest.mark.parametrize("stream", [False, True])
def test_a_too_long_prompt_is_a_400_and_never_a_fallback(srv: LiveServer, grab: Grab, stream: bool) -> None:
    before = fallbacks(srv)
    long = "hello " * 3000  # ~3000 tokens: over the model's 2048-token context, under max_prompt_chars
    with pytest.raises(openai.BadRequestError) as err:
        oa(srv).chat.completions.create(
            model="support", messages=[{"role": "user", "content": long}], max_tokens=4, stream=stream
        )
    assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert fallbacks(srv) == before
    gc.collect()
    time.sleep(0.2)
    messages = [r.getMessage() for r in grab.records]
    assert not any(
        "never retrieved" in m or "falls back" in m or "generalist answers" in m for m in messages
    ), messages


# -- finding 4: nothing silently ignored -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}, "tools"),
        ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_tools_a_model_cannot_honour_are_a_400_naming_the_field(
    srv: LiveServer, extra: dict[str, Any], field: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oa(srv).chat.completions.create(
            model="support",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            stream=stream,
            **extra,
        )
    body: Any = err.value.body
    assert body["param"] == field and body["code"] == "unsupported_parameter"
    assert "support" in body["message"]


CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "sunny": {"type": "boolean"}},
    "required": ["city", "sunny"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True])
def test_response_format_json_schema_is_honoured_by_grammar_on_llama_cpp(
    srv: LiveServer, stream: bool
) -> None:
    kw: dict[str, Any] = {
        "model": "support",
        "messages": [{"role": "user", "content": "Is it sunny in Paris? Answer in JSON."}],
        "max_tokens": 48,
        "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": CITY}},
    }
    if stream:
        text = "".join(
            c.choices[0].delta.content or ""
            for c in oa(srv).chat.completions.create(stream=True, **kw)
            if c.choices
        )
    else:
        text = oa(srv).chat.completions.create(**kw).choices[0].message.content or ""
    data = json.loads(text)
    assert set(data) == {"city", "sunny"} and isinstance(data["sunny"], bool) and len(data["city"]) <= 12


def test_response_format_json_object_starts_an_object_and_bad_formats_are_400(srv: LiveServer) -> None:
    r = oa(srv).chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "Give me a JSON object describing a cat."}],
        max_tokens=64,
        response_format={"type": "json_object"},
    )
    text = r.choices[0].message.content or ""
    assert text.lstrip().startswith("{"), text
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    for bad in (
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": 3}},
    ):
        with pytest.raises(openai.BadRequestError) as err:
            oa(srv).chat.completions.create(
                model="support",
                messages=[{"role": "user", "content": "x"}],
                response_format=bad,  # type: ignore[arg-type]
            )
        assert err.value.body["param"] == "response_format"  # type: ignore[index]


def test_plain_text_choices_are_accepted(srv: LiveServer) -> None:
    r = oa(srv).chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=2,
        tool_choice="none",
        response_format={"type": "text"},
    )
    assert r.choices[0].message.content


def test_null_content_and_other_shape_errors_are_400(srv: LiveServer) -> None:
    url = f"{srv.url}/v1/chat/completions"
    null = httpx.post(url, json={"model": "support", "messages": [{"role": "user", "content": None}]})
    assert null.status_code == 400 and "content is null" in null.json()["error"]["message"]
    for bad in (
        {"model": "support", "messages": [{"role": "user"}]},
        {"model": "support", "messages": [{"role": "wizard", "content": "x"}]},
        {"model": "support", "messages": "hi"},
        {"model": 3, "messages": [{"role": "user", "content": "x"}]},
        [1, 2],
    ):
        r = httpx.post(url, json=bad)
        assert r.status_code == 400, (bad, r.text)


# -- finding 5: graceful shutdown ---------------------------------------------------------------------------------


def test_drain_finishes_short_requests_ends_long_streams_cleanly_and_answers_503() -> None:
    from cadre.serve.lifecycle import DrainingServer

    spec = small_spec(server={"max_tokens_limit": 1024, "queue_size": 8})
    server = LiveServer(spec, drain_s=1.5).start()
    events: list[str] = []
    short: dict[str, Any] = {}

    def long_stream() -> None:
        body = {"model": "generalist", "prompt": COUNTING, "max_tokens": 1000, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=120) as r:
            events.extend(line for line in r.iter_lines() if line)

    def short_request() -> None:
        body = {"model": "support", "prompt": "Hello", "max_tokens": 3}
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
        short["status"] = r.status_code

    try:
        t_long = threading.Thread(target=long_stream)
        t_long.start()
        deadline = time.monotonic() + 30
        while not events and time.monotonic() < deadline:
            time.sleep(0.02)
        assert events, "the long stream never started"
        t_short = threading.Thread(target=short_request)
        t_short.start()
        while server.gateway.admission.active < 2 and time.monotonic() < deadline:
            time.sleep(0.005)  # both requests admitted before the drain starts
        assert isinstance(server.server, DrainingServer)
        server.server.start_draining()  # what SIGTERM does
        refused = httpx.post(
            f"{server.url}/v1/completions",
            json={"model": "support", "prompt": "x", "max_tokens": 2},
            timeout=30,
        )
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "shutting_down"
        health = httpx.get(f"{server.url}/health", timeout=30)
        assert health.status_code == 503 and health.json()["status"] == "draining"
        t_short.join(timeout=60)
        t_long.join(timeout=60)
        assert short.get("status") == 200  # finished within the drain
        assert events[-1] == "data: [DONE]"
        assert any('"code":"shutting_down"' in e.replace(" ", "") for e in events[-3:]), events[-3:]
        server.thread.join(timeout=30)
        assert not server.thread.is_alive()  # the drain ended the server
    finally:
        if server.thread.is_alive():
            server.stop()
