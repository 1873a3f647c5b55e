"""Issue 16, "an honest API surface": logprobs served from llama.cpp, tool calling passed through to ``openai:``
backends, and a 400 naming the field and the model wherever a backend cannot honour one.

Everything goes over a real socket with the official ``openai`` client: the gateway serves the bundled SmolLM2
through llama.cpp (``support``) and a specialist on an upstream OpenAI-compatible server that calls tools
(``agent``, :mod:`tests.serve.tool_upstream`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from cadre.runtime import load_backend

from .conftest import LiveServer, small_spec
from .tool_upstream import CALL_ID, ToolUpstream

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
SUPPORT = {"name": "support", "base": "smollm2-135m", "system_prompt": "You are a customer-support agent."}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ToolUpstream]:
    with ToolUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def srv(upstream: ToolUpstream) -> Iterator[LiveServer]:
    spec = small_spec(
        specialists=[
            {**SUPPORT, "decoding": {"max_tokens": 8}},
            {"name": "agent", "base": f"openai:up-model@{upstream.url}", "decoding": {"max_tokens": 32}},
        ]
    )
    with LiveServer(spec) as server:
        yield server


def oa(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none-needed", max_retries=0, timeout=120)


# -- logprobs from llama.cpp --------------------------------------------------------------------------------------


def test_chat_logprobs_with_alternatives_streamed_and_not(srv: LiveServer) -> None:
    kw: dict[str, Any] = {
        "model": "support",
        "messages": [{"role": "user", "content": "Say hello to the customer."}],
        "max_tokens": 6,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
    }
    r = oa(srv).chat.completions.create(**kw)
    assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content
    lps = r.choices[0].logprobs.content
    assert r.usage is not None and len(lps) == r.usage.completion_tokens
    assert "".join(t.token for t in lps).startswith(r.choices[0].message.content or "")
    for t in lps:
        assert t.logprob <= 0 and bytes(t.bytes or []).decode(errors="replace") == t.token
        assert len(t.top_logprobs) == 3
        values = [a.logprob for a in t.top_logprobs]
        assert values == sorted(values, reverse=True)
        # greedy decoding: the chosen token is the most likely one
        assert t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob == pytest.approx(t.logprob)

    chunks = list(oa(srv).chat.completions.create(stream=True, **kw))
    streamed = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []
    ]
    assert [t.token for t in streamed] == [t.token for t in lps]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in lps], abs=0.05)
    assert all(len(t.top_logprobs) == 3 for t in streamed)

    plain = oa(srv).chat.completions.create(**{k: v for k, v in kw.items() if "logprobs" not in k})
    assert plain.choices[0].logprobs is None


def test_completion_logprobs_in_the_legacy_shape_streamed_and_not(srv: LiveServer) -> None:
    kw: dict[str, Any] = {
        "model": "support",
        "prompt": COUNTING,
        "max_tokens": 6,
        "temperature": 0,
        "logprobs": 2,
    }
    r = oa(srv).completions.create(**kw)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset
    n = len(lp.tokens)
    assert r.usage is not None and n == r.usage.completion_tokens
    assert len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert "".join(lp.tokens).startswith(r.choices[0].text) and r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(n)]
    for value, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert 1 <= len(top) <= 2 and max(top.values()) == pytest.approx(value)  # greedy: the best one

    chunks = list(oa(srv).completions.create(stream=True, **kw))
    tokens = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.tokens or []
    ]
    offsets = [
        o
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for o in c.choices[0].logprobs.text_offset or []
    ]
    assert tokens == lp.tokens and offsets == lp.text_offset


def test_bad_logprob_requests_are_400(srv: LiveServer) -> None:
    url = f"{srv.url}/v1"
    msgs = [{"role": "user", "content": "hi"}]
    r = httpx.post(f"{url}/chat/completions", json={"model": "support", "messages": msgs, "top_logprobs": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs", r.text
    r = httpx.post(f"{url}/completions", json={"model": "support", "prompt": "x", "logprobs": 6})
    assert r.status_code == 400, r.text
    r = httpx.post(f"{url}/completions", json={"model": "support", "prompt": "x", "echo": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "echo", r.text


class _NoLogprobs:
    """A backend that does not say it serves logprobs (a third-party engine, say): the real llama.cpp one,
    with ``serves_logprobs`` off."""

    serves_logprobs = False

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_backend_without_logprobs_is_a_400_naming_the_field_and_model() -> None:
    spec = small_spec(specialists=[SUPPORT], generalist=None, server={"fallback": "error"})

    def loader(name: Any, **kw: Any) -> Any:
        return _NoLogprobs(load_backend(name, **kw))

    with LiveServer(spec, loader=loader) as server:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as err:
                oa(server).chat.completions.create(
                    model="support",
                    messages=[{"role": "user", "content": "hi"}],
                    logprobs=True,
                    stream=stream,
                )
            body: Any = err.value.body
            assert body["param"] == "logprobs" and body["code"] == "unsupported_parameter"
            assert "'support'" in body["message"]
        with pytest.raises(openai.BadRequestError) as err:
            oa(server).completions.create(model="support", prompt="hi", logprobs=1)
        assert err.value.body["param"] == "logprobs"  # type: ignore[index]


def test_logprobs_are_asked_of_an_openai_backend(srv: LiveServer, upstream: ToolUpstream) -> None:
    r = oa(srv).chat.completions.create(
        model="agent", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=2
    )
    sent = upstream.requests[-1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content
    assert r.choices[0].logprobs.content[0].token == r.choices[0].message.content


# -- tools through to an openai: backend ---------------------------------------------------------------------------


def test_forced_tool_call_is_forwarded_and_returned(srv: LiveServer, upstream: ToolUpstream) -> None:
    r = oa(srv).chat.completions.create(
        model="agent",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[TIME, WEATHER],  # type: ignore[list-item]
        tool_choice=FORCE_WEATHER,  # type: ignore[arg-type]
        parallel_tool_calls=False,
    )
    sent = upstream.requests[-1]
    assert sent["tools"] == [TIME, WEATHER] and sent["tool_choice"] == FORCE_WEATHER
    assert sent["parallel_tool_calls"] is False
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id == CALL_ID and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_streamed_tool_call_arrives_as_deltas(srv: LiveServer) -> None:
    chunks = list(
        oa(srv).chat.completions.create(
            model="agent",
            messages=[{"role": "user", "content": "Weather in Lisbon?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            stream=True,
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(deltas) > 2  # the id and name first, then the arguments in pieces
    assert deltas[0].id == CALL_ID and deltas[0].function and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(args) == {"city": "Lisbon"}
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["tool_calls"]


def test_tool_results_go_back_to_the_upstream(srv: LiveServer, upstream: ToolUpstream) -> None:
    call = {
        "id": CALL_ID,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    messages: list[Any] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": CALL_ID, "content": "sunny, 21 C"},
    ]
    r = oa(srv).chat.completions.create(model="agent", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert r.choices[0].message.content == "the tool said: sunny, 21 C"
    assert r.choices[0].finish_reason == "stop"
    sent = upstream.requests[-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert sent[-1] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": CALL_ID}


def test_tool_requests_a_local_model_cannot_honour_stay_400(srv: LiveServer) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": [WEATHER]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": "required"}, "tools"),
        ({"functions": [WEATHER["function"]]}, "functions"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                ]
            },
            "messages",
        ),
    ]
    for extra, field in cases:
        body = {"model": "support", "messages": [{"role": "user", "content": "Weather?"}], **extra}
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 400, (extra, r.text)
        err = r.json()["error"]
        assert (
            err["param"] == field and err["code"] == "unsupported_parameter" and "'support'" in err["message"]
        )
    # the deprecated functions form is not passed through even where tools are
    r = httpx.post(
        f"{srv.url}/v1/chat/completions",
        json={
            "model": "agent",
            "messages": [{"role": "user", "content": "x"}],
            "functions": [WEATHER["function"]],
        },
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "functions"
    # a forced tool_choice without tools is a 400 even where tools are forwarded
    r = httpx.post(
        f"{srv.url}/v1/chat/completions",
        json={"model": "agent", "messages": [{"role": "user", "content": "x"}], "tool_choice": FORCE_WEATHER},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"


def test_tools_with_tool_choice_none_are_plain_text_anywhere(srv: LiveServer) -> None:
    r = oa(srv).chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=2,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls
