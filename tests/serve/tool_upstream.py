"""An upstream OpenAI-compatible server that calls tools, on a real loopback socket (``http.server``).

It stands in for a hosted model or a vLLM server with tool calling: for a chat request with ``tools`` it answers
a call of the tool that ``tool_choice`` forces (else the first tool), with arguments built from the last user
message; streamed, the call arrives in fragments the way OpenAI sends them (id and name first, then the
arguments in pieces). Without tools, or after a tool turn, it answers text that quotes the tool result. Every
request body it receives is kept in :attr:`ToolUpstream.requests` so a test can check what was forwarded.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ToolUpstream"]

CALL_ID = "call_upstream_1"


def _answer(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    """(text, tool calls) for a chat request body."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"the tool said: {last.get('content')}", None
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return "plain text, no tools", None
    name = tools[0]["function"]["name"]
    if isinstance(choice, dict):
        name = choice["function"]["name"]
    city = str(last.get("content", "")).rsplit(" ", 1)[-1].strip("?.!")
    return "", [
        {
            "id": CALL_ID,
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"city": city})},
        }
    ]


def _logprobs(text: str) -> dict[str, Any]:
    return {"content": [{"token": text, "logprob": -0.25, "bytes": list(text.encode()), "top_logprobs": []}]}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        self.server.requests.append(body)
        text, calls = _answer(body)
        finish = "tool_calls" if calls else "stop"
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        base = {"id": "chatcmpl-up", "created": int(time.time()), "model": body.get("model", "")}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
            if body.get("logprobs") and text:
                choice["logprobs"] = _logprobs(text)
            self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": reason, **extra}
            chunk = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        if calls:
            call = calls[0]
            args = call["function"]["arguments"]
            head = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            event({"tool_calls": [head]})
            for i in range(0, len(args), 5):  # the arguments in pieces
                event({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 5]}}]})
        else:
            extra = {"logprobs": _logprobs(text)} if body.get("logprobs") else {}
            event({"content": text}, **extra)
        event({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    requests: list[dict[str, Any]]


class ToolUpstream:
    """The server on 127.0.0.1:<free port> until :meth:`stop`; its OpenAI base URL is :attr:`url`."""

    def __init__(self) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.httpd.requests

    def __enter__(self) -> ToolUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
