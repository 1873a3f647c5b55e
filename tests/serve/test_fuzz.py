"""Property-based fuzzing of the request bodies (issue 16): whatever JSON a client sends to a generation or
embedding endpoint, the server answers in OpenAI's error shape or with an answer: never a 5xx, never a traceback.

Bodies are drawn by hypothesis around the OpenAI request models: mostly well-shaped requests with wrong values
(negative or huge numbers, NaN, wrong types, unknown roles and fields, tools, formats, nulls), sometimes any JSON
at all. The budget is bounded (``max_examples`` per endpoint, no shrinking database) so the test takes about a
minute on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import LiveServer, small_spec

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
NUMBER = st.integers(min_value=-3, max_value=3000) | st.floats() | JSON
TEXT = st.text(max_size=40)
MODEL = st.sampled_from(["support", "generalist", "auto", "nope", "all-minilm-l6-v2", ""]) | JSON

PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]), "text": TEXT | JSON})
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "wizard"]) | JSON,
        "content": TEXT | st.none() | st.lists(PART, max_size=2) | JSON,
    },
    optional={"name": TEXT | JSON, "tool_calls": JSON},
)
SAMPLING = {
    "max_tokens": st.integers(min_value=-2, max_value=6) | NUMBER,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "n": NUMBER,
    "stream": st.booleans() | JSON,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | JSON}) | JSON,
    "stop": TEXT | st.lists(TEXT, max_size=6) | JSON,
    "seed": NUMBER,
    "logit_bias": JSON,
    "user": TEXT | JSON,
}
CHAT = st.fixed_dictionaries(
    {"model": MODEL, "messages": st.lists(MESSAGE, max_size=3) | JSON},
    optional={
        **SAMPLING,
        "max_completion_tokens": NUMBER,
        "logprobs": st.booleans() | JSON,
        "top_logprobs": NUMBER,
        "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": JSON}), max_size=2)
        | JSON,
        "tool_choice": st.sampled_from(["none", "auto", "required"]) | JSON,
        "response_format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "x"])})
        | JSON,
        "frobnicate": JSON,
    },
)
COMPLETION = st.fixed_dictionaries(
    {"model": MODEL, "prompt": TEXT | st.lists(TEXT, max_size=2) | JSON},
    optional={**SAMPLING, "echo": st.booleans() | JSON, "logprobs": NUMBER, "suffix": JSON},
)
EMBEDDING = st.fixed_dictionaries(
    {"model": MODEL, "input": TEXT | st.lists(TEXT | JSON, max_size=3) | JSON},
    optional={"encoding_format": st.sampled_from(["float", "base64", "x"]) | JSON, "dimensions": NUMBER},
)
FUZZ = settings(
    max_examples=int(os.environ.get("CADRE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[LiveServer, httpx.Client]]:
    spec = small_spec(server={"specialist_timeout_s": 30, "generalist_timeout_s": 30})
    with LiveServer(spec) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield server, client


def _post(client: httpx.Client, path: str, body: Any) -> None:
    try:
        payload = json.dumps(body).encode()  # NaN and Infinity as Python writes them: not strict JSON
    except (ValueError, OverflowError):
        return
    r = client.post(path, content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (path, body, r.status_code, r.text[:300])
    assert "Traceback" not in r.text
    if r.headers.get("content-type", "").startswith("application/json"):
        data = r.json()
        if r.status_code >= 400:
            assert set(data["error"]) == {"message", "type", "param", "code"}
    else:  # a stream: an error event is allowed, a server error is not
        assert "internal_error" not in r.text and "server_error" not in r.text, r.text[-300:]


def _no_5xx(server: LiveServer) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    bad = [ln for ln in text.splitlines() if ln.startswith("cadre_requests_total{") and 'status="5' in ln]
    assert not [ln for ln in bad if not ln.endswith(" 0.0")], bad


@FUZZ
@given(body=CHAT | JSON)
def test_chat_completions_never_answer_5xx(fuzz_server: tuple[LiveServer, httpx.Client], body: Any) -> None:
    _post(fuzz_server[1], "/v1/chat/completions", body)


@FUZZ
@given(body=COMPLETION | JSON)
def test_completions_never_answer_5xx(fuzz_server: tuple[LiveServer, httpx.Client], body: Any) -> None:
    _post(fuzz_server[1], "/v1/completions", body)


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))
@given(body=EMBEDDING | JSON)
def test_embeddings_never_answer_5xx(fuzz_server: tuple[LiveServer, httpx.Client], body: Any) -> None:
    _post(fuzz_server[1], "/v1/embeddings", body)


def test_the_fuzzed_server_counted_no_5xx(fuzz_server: tuple[LiveServer, httpx.Client]) -> None:
    _no_5xx(fuzz_server[0])
