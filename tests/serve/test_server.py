"""The server over a real socket, driven by the official openai client, on the bundled SmolLM2 (offline)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from .conftest import LiveServer

KEY = "test-key-123"


def client(live: LiveServer, *, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0, timeout=120)


def hi(text: str = "Hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def metric(live: LiveServer, name: str) -> float:
    """Sum of every sample of ``name`` in /metrics."""
    text = httpx.get(f"{live.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_lists_every_specialist_the_generalist_auto_and_embeddings(live: LiveServer) -> None:
    models = {m.id: m for m in client(live).models.list().data}
    assert set(models) == {"support", "invoices", "generalist", "auto", "all-minilm-l6-v2"}
    support = models["support"].model_dump()
    assert support["parent"] == "smollm2-135m"
    assert support["adapter"] is False
    assert "bare base" in support["description"]  # says it serves without an adapter
    assert client(live).models.retrieve("invoices").id == "invoices"


def test_chat_says_who_answered_and_usage_is_exact(live: LiveServer) -> None:
    raw = client(live).chat.completions.with_raw_response.create(model="support", messages=hi(), max_tokens=4)
    assert raw.headers["x-cadre-route"] == "support"
    r = raw.parse()
    assert r.model == "support"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    info = r.model_extra["cadre"]  # type: ignore[index]
    assert info["route"] == "support" and "no adapter" in info["reason"]
    # max_tokens=4 and finish "length": exactly 4 completion tokens were generated
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 4
    backend = live.gateway.served.workers[live.gateway.snapshot.targets["support"].worker_key].backend
    system = "You are a customer-support agent."
    prompt = backend.render_chat([{"role": "system", "content": system}, *hi()])
    assert r.usage.prompt_tokens == len(backend.tokenize(prompt, add_special=False, parse_special=True))
    assert r.usage.total_tokens == r.usage.prompt_tokens + 4


def test_streaming_matches_non_streaming_text_and_usage(live: LiveServer) -> None:
    c = client(live)
    plain = c.chat.completions.create(model="invoices", messages=hi("Invoice 12, total 5 USD"), max_tokens=6)
    chunks = list(
        c.chat.completions.create(
            model="invoices",
            messages=hi("Invoice 12, total 5 USD"),
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content  # temperature 0: same answer
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["cadre"]["route"] == "invoices"  # type: ignore[index]
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(
        include={"prompt_tokens", "completion_tokens"}
    ) == plain.usage.model_dump(  # type: ignore[union-attr]
        include={"prompt_tokens", "completion_tokens"}
    )


def test_completions_endpoint(live: LiveServer) -> None:
    r = client(live).completions.create(model="generalist", prompt="The capital of France is", max_tokens=3)
    assert r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens == 3
    stream = client(live).completions.create(model="support", prompt="Hello", max_tokens=3, stream=True)
    assert "".join(ch.choices[0].text for ch in stream if ch.choices)


def test_401_without_or_with_a_wrong_key(live: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        client(live, key="wrong-key-999").models.list()
    assert err.value.status_code == 401
    body = httpx.get(f"{live.url}/v1/models").json()
    assert body["error"]["code"] == "missing_api_key" and body["error"]["type"] == "authentication_error"
    assert httpx.get(f"{live.url}/health").status_code == 200  # health stays open for load balancers


def test_404_unknown_model_suggests_names(live: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client(live).chat.completions.create(model="suport", messages=hi())
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found" and "support" in body["message"]
    assert httpx.post(f"{live.url}/v1/nope", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404


def test_400s_bad_requests_in_openai_shape(live: LiveServer) -> None:
    c = client(live)
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="support", messages=hi(), max_tokens=10_000)
    assert err.value.body["param"] == "max_tokens"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="support", messages=hi("x" * 5000))
    assert err.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="support", messages=[])
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="support", messages=hi(), n=2)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    bad = httpx.post(
        f"{live.url}/v1/chat/completions", content=b'{"model": "support", "messages": [', headers=headers
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "the request body is not valid JSON"
    assert "Traceback" not in bad.text
    huge = httpx.post(
        f"{live.url}/v1/chat/completions",
        content=json.dumps({"model": "support", "messages": hi("y" * 30_000)}),
        headers=headers,
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"


def test_unknown_fields_are_logged_not_dropped_silently(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="cadre.serve"):
        client(live).chat.completions.create(
            model="support", messages=hi(), max_tokens=2, extra_body={"frobnicate": 1}, presence_penalty=0.5
        )
    assert any("frobnicate" in r.message and "presence_penalty" in r.message for r in caplog.records)


def test_auto_without_router_is_a_clear_400(live: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(live).chat.completions.create(model="auto", messages=hi())
    assert err.value.body["code"] == "no_router"  # type: ignore[index]


def test_429_with_retry_after_when_the_queue_is_full_then_recovers(live: LiveServer) -> None:
    gw = live.gateway
    old = gw.admission.limit
    gw.admission.limit = 1
    headers = {"Authorization": f"Bearer {KEY}"}
    # a counting prompt keeps the model going to max_tokens, so the stream holds its slot for a while
    body = {"model": "generalist", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 64, "stream": True}
    try:
        with httpx.stream("POST", f"{live.url}/v1/completions", json=body, headers=headers, timeout=120) as s:
            assert s.status_code == 200
            lines = s.iter_lines()  # keep the iterator: dropping it closes the connection
            assert next(lines).startswith("data: ")  # the stream holds the only slot
            with pytest.raises(openai.RateLimitError) as err:
                client(live).chat.completions.create(model="invoices", messages=hi(), max_tokens=2)
            assert int(err.value.response.headers["retry-after"]) >= 1
            assert err.value.body["code"] == "queue_full"  # type: ignore[index]
        # closing the stream (a client disconnect) frees the slot and cancels the generation
        deadline = time.monotonic() + 30
        while gw.admission.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.admission.active == 0
        assert client(live).chat.completions.create(model="invoices", messages=hi(), max_tokens=2).choices
    finally:
        gw.admission.limit = old
    assert metric(live, "cadre_rejected_total") >= 1
    assert metric(live, "cadre_cancelled_total") >= 1


def test_metrics_count_requests_tokens_routes(live: LiveServer) -> None:
    client(live).chat.completions.create(model="generalist", messages=hi(), max_tokens=2)
    text = httpx.get(f"{live.url}/metrics").text
    assert 'cadre_routed_requests_total{how="name",route="generalist"}' in text
    assert 'cadre_tokens_total{kind="completion",route="generalist"}' in text
    assert "cadre_request_seconds_bucket" in text
    assert 'cadre_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert "cadre_queue_depth 0.0" in text
    assert 'cadre_generations_in_flight{model="smollm2-135m"} 0.0' in text


def test_client_disconnect_cancels_a_non_streamed_generation(live: LiveServer) -> None:
    cancelled = metric(live, "cadre_cancelled_total")
    body = {"model": "generalist", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 64}
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and hangs up
        httpx.post(
            f"{live.url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.5
        )
    deadline = time.monotonic() + 30
    while metric(live, "cadre_cancelled_total") == cancelled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(live, "cadre_cancelled_total") == cancelled + 1
    assert live.gateway.admission.active == 0
    assert time.monotonic() - t0 < 30


def test_a_specialist_that_times_out_falls_back_to_the_generalist(live: LiveServer) -> None:
    server_spec = live.gateway.spec.server
    old = server_spec.specialist_timeout_s
    server_spec.specialist_timeout_s = 0.001  # no specialist answers that fast
    try:
        raw = client(live).chat.completions.with_raw_response.create(
            model="invoices", messages=hi(), max_tokens=2
        )
    finally:
        server_spec.specialist_timeout_s = old
    assert raw.headers["x-cadre-route"] == "generalist" and raw.headers["x-cadre-fallback"] == "1"
    info = raw.parse().model_extra["cadre"]  # type: ignore[index]
    assert info["fallback"] is True and "timed out" in info["reason"]
    assert live.gateway.metrics.fallbacks.labels("invoices", "timeout")._value.get() == 1
