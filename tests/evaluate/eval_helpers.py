"""Helpers for the evaluation tests: small task data and a rule-based Backend for runner bookkeeping tests.

The rule-based backend is a real implementation of the runtime's Backend protocol (a keyword classifier), used
where a test checks the runner's records, resume and failure handling rather than a model's quality; the
end-to-end tests (marked slow) use the bundled SmolLM2.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from cadre.errors import BackendError
from cadre.runtime.protocol import (
    ChatMessage,
    ChatRequest,
    Completion,
    SamplingParams,
    StreamChunk,
    Usage,
    collect_stream,
)

KEYWORDS = {
    "refund": "refund_request",
    "money back": "refund_request",
    "where is": "order_status",
    "arrive": "order_status",
    "cancel": "cancel_order",
    "password": "account_access",
    "log in": "account_access",
}

INTENT_ROWS = [
    ("a1", "Where is my order #123? It has not arrived.", "order_status"),
    ("a2", "Please cancel order #555, I ordered it by mistake.", "cancel_order"),
    ("a3", "I want a refund for the broken lamp.", "refund_request"),
    ("a4", "I can't log in, my password is rejected.", "account_access"),
    ("a5", "When will my parcel arrive? Tom said it shipped.", "order_status"),
    ("a6", "Cancel my purchase of the chair please.", "cancel_order"),
    ("a7", "Can I get my money back for the shoes?", "refund_request"),
    ("a8", "Hi, this is Sarah. My password reset email never came.", "account_access"),
    ("a9", "The blender is great but I have a question about the warranty.", "order_status"),
    ("a10", "Where is the package? Anna from your team promised Friday.", "order_status"),
]


class KeywordBackend:
    """A Backend that answers an intent label by keyword lookup on the last user turn (deterministic)."""

    def __init__(
        self, name: str = "keywords", *, fail_on: Sequence[str] = (), interrupt_after: int | None = None
    ):
        self.name = name
        self.fail_on = tuple(fail_on)
        self.interrupt_after = interrupt_after
        self.calls = 0
        self.closed = False
        self._lock = threading.Lock()

    def _answer(self, text: str) -> str:
        low = text.lower()
        for needle in self.fail_on:
            if needle.lower() in low:
                raise BackendError(f"{self.name}: upstream error 503 on {needle!r}")
        for key, label in KEYWORDS.items():
            if key in low:
                return f"Intent: {label}"
        return "I am not sure."

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        with self._lock:
            self.calls += 1
            if self.interrupt_after is not None and self.calls > self.interrupt_after:
                raise KeyboardInterrupt
        text = self._answer(messages[-1]["content"])
        words = text.split(" ")
        for i, w in enumerate(words):
            last = i == len(words) - 1
            yield StreamChunk(
                text=w + ("" if last else " "),
                finish_reason="stop" if last else None,
                usage=Usage(sum(len(m["content"].split()) for m in messages), len(words)) if last else None,
            )

    def chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        return collect_stream(
            self.stream_chat(messages, params, adapter=adapter), model=self.name, adapter=adapter
        )

    def complete(self, prompt: str, params: SamplingParams, *, adapter: str | None = None) -> Completion:
        return self.chat([{"role": "user", "content": prompt}], params, adapter=adapter)

    def stream_complete(
        self, prompt: str, params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        return self.stream_chat([{"role": "user", "content": prompt}], params, adapter=adapter)

    def batch_chat(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        return [self.chat(r.messages, r.params, adapter=r.adapter) for r in requests]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def adapters(self) -> list[str]:
        return []

    def close(self) -> None:
        self.closed = True


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class OpenAIStub:
    """A minimal OpenAI-compatible HTTP server (streamed /v1/chat/completions) answering with a KeywordBackend.

    It serves over a real socket, so the runtime's OpenAI client, the eval's `openai:` systems and the price-table
    costing are exercised end to end. Messages containing ``REJECTME`` get an HTTP 400 error body.
    """

    def __init__(self) -> None:
        import http.server

        backend = KeywordBackend("stub")
        self.requests = 0
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(
                    200,
                    json.dumps({"object": "list", "data": [{"id": "stub-model"}]}).encode(),
                    "application/json",
                )

            def do_POST(self) -> None:
                stub.requests += 1
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                last = req["messages"][-1]["content"]
                if "REJECTME" in last:
                    err = {
                        "error": {"message": "content rejected", "type": "invalid_request_error", "code": 400}
                    }
                    self._send(400, json.dumps(err).encode(), "application/json")
                    return
                text = backend._answer(last)
                prompt_tokens = sum(len(m["content"].split()) for m in req["messages"])
                events = [
                    {
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": w + " "},
                                "finish_reason": None,
                            }
                        ]
                    }
                    for w in text.split()
                ]
                events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                events.append(
                    {
                        "choices": [],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(events) - 1},
                    }
                )
                body = "".join(
                    "data: "
                    + json.dumps({"id": "x", "object": "chat.completion.chunk", "model": req["model"], **e})
                    + "\n\n"
                    for e in events
                )
                self._send(200, (body + "data: [DONE]\n\n").encode(), "text/event-stream")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
