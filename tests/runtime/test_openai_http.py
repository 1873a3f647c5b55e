"""HTTP backend failure handling against real sockets: a tiny scripted server on loopback, and a closed port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cadre.errors import BackendError
from cadre.runtime import SamplingParams
from cadre.runtime.openai_http import OpenAIBackend

P = SamplingParams(max_tokens=4)
MSG = [{"role": "user", "content": "hi"}]


class Script:
    """Statuses to answer in turn (then 200), and what the server saw."""

    def __init__(self, statuses: list[int], retry_after: str | None = None) -> None:
        self.statuses = statuses
        self.retry_after = retry_after
        self.bodies: list[dict] = []
        self.times: list[float] = []


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.bodies.append(body)
            script.times.append(time.monotonic())
            if script.statuses:
                status = script.statuses.pop(0)
                payload = json.dumps({"error": {"message": f"scripted {status}", "code": None}}).encode()
                self.send_response(status)
                if script.retry_after:
                    self.send_header("Retry-After", script.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in ["Hello", " there"]:
                event = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            done = {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())

    return Handler


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Script]]:
    script: Script = request.param
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("server", [Script([503, 429])], indirect=True)
def test_retries_with_backoff_on_429_and_5xx(server: tuple[str, Script]) -> None:
    url, script = server
    with OpenAIBackend(url, "m", max_retries=3, backoff=0.05) as b:
        c = b.chat(MSG, P)
    assert c.text == "Hello there" and c.usage.prompt_tokens == 3 and c.usage.completion_tokens == 2
    assert len(script.bodies) == 3
    assert script.times[2] - script.times[1] >= script.times[1] - script.times[0] > 0.03  # growing waits


@pytest.mark.parametrize("server", [Script([503], retry_after="0.4")], indirect=True)
def test_retry_after_is_honoured(server: tuple[str, Script]) -> None:
    url, script = server
    with OpenAIBackend(url, "m", max_retries=1, backoff=0.01) as b:
        b.chat(MSG, P)
    assert script.times[1] - script.times[0] >= 0.35


@pytest.mark.parametrize("server", [Script([500, 500, 500])], indirect=True)
def test_gives_up_with_the_status(server: tuple[str, Script]) -> None:
    url, _ = server
    with (
        OpenAIBackend(url, "m", max_retries=1, backoff=0.01) as b,
        pytest.raises(BackendError, match="HTTP 500"),
    ):
        b.chat(MSG, P)


@pytest.mark.parametrize("server", [Script([401])], indirect=True)
def test_bad_key_is_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    with OpenAIBackend(url, "m", max_retries=3) as b, pytest.raises(BackendError, match="OPENAI_API_KEY"):
        b.chat(MSG, P)
    assert len(script.bodies) == 1


@pytest.mark.parametrize("server", [Script([])], indirect=True)
def test_adapter_is_sent_as_the_model_and_params_are_forwarded(server: tuple[str, Script]) -> None:
    url, script = server
    with OpenAIBackend(url, "base", adapters={"billing": "billing-lora"}) as b:
        b.chat(MSG, SamplingParams(max_tokens=7, temperature=0.5, seed=3, stop=("\n",)), adapter="billing")
    body = script.bodies[0]
    assert (body["model"], body["max_tokens"], body["temperature"], body["seed"], body["stop"]) == (
        "billing-lora", 7, 0.5, 3, ["\n"],
    )  # fmt: skip


def test_unreachable_endpoint_is_one_clear_error(unused_port: Callable[[], int]) -> None:
    port = unused_port()
    b = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff=0.01)
    with b, pytest.raises(BackendError, match=r"cannot reach .* start the server or fix the base_url"):
        b.chat(MSG, P)


def test_streamed_tool_call_fragments_join_into_calls() -> None:
    from cadre.runtime.protocol import StreamChunk, ToolCall, collect_stream

    chunks = [
        StreamChunk(
            text="", tool_calls=[ToolCall(index=0, id="a", name="f"), ToolCall(index=1, id="b", name="g")]
        ),
        StreamChunk(
            text="", tool_calls=[ToolCall(index=0, arguments='{"x": '), ToolCall(index=1, arguments="{}")]
        ),
        StreamChunk(text="", tool_calls=[ToolCall(index=0, arguments="1}")]),
        StreamChunk(text="", finish_reason="tool_calls"),
    ]
    c = collect_stream(iter(chunks))
    assert c.finish_reason == "tool_calls"
    assert c.tool_calls == [
        ToolCall(index=0, id="a", name="f", arguments='{"x": 1}'),
        ToolCall(index=1, id="b", name="g", arguments="{}"),
    ]
