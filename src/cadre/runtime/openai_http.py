"""OpenAI-compatible HTTP backend (httpx): vLLM, Ollama, llama-server, llama-cpp-python's server, hosted APIs.

- ``/chat/completions`` for chat, ``/completions`` for plain completion; both streamed over SSE on request;
- an adapter is addressed the way vLLM and cadre's own server do it: the ``model`` field names it;
- timeouts; retries with exponential backoff (and ``Retry-After``) on 429, 5xx and connection errors, only
  before any token was received (a half-streamed answer is never silently restarted);
- per-token logprobs (and the most likely alternatives) when the server returns them;
- tool calling passed through: ``tools`` / ``tool_choice`` are sent as is, the server's ``tool_calls`` come back
  (as fragments when streamed) with ``finish_reason: tool_calls``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from cadre.errors import BackendError, ConfigError, ContextLengthError, NotFoundError, RequestRejectedError
from cadre.runtime.generation import chat_from_stream, complete_from_stream
from cadre.runtime.protocol import (
    ChatMessage,
    ChatRequest,
    Completion,
    FinishReason,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from cadre.runtime.registry import ModelRef

__all__ = ["OpenAIBackend"]

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """A model behind an OpenAI-compatible endpoint; implements :class:`cadre.runtime.Backend`."""

    forwards_response_format = True  # SamplingParams.response_format is sent to the endpoint as is
    forwards_tools = True  # SamplingParams.tools / tool_choice too; the endpoint's tool_calls come back
    serves_logprobs = True  # asked of the endpoint; returned when it sends them

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        adapters: dict[str, str | Path] | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_concurrency: int = 8,
        n_ctx: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model
        self.n_ctx = n_ctx
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_concurrency = max_concurrency
        # adapter name -> the model id the server knows it by (vLLM: the --lora-modules name)
        self._adapters: dict[str, str] = {k: str(v) for k, v in (adapters or {}).items()}
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
        )

    @classmethod
    def from_ref(cls, ref: ModelRef, **options: Any) -> OpenAIBackend:
        """Load ``ref`` with :func:`cadre.runtime.load_backend`'s options (adapters, n_ctx, n_threads, ...)."""
        assert ref.base_url is not None and ref.remote_model is not None
        options.pop("n_threads", None)  # the server decides
        return cls(ref.base_url, ref.remote_model, **options)

    # -- adapters -------------------------------------------------------------------------------------------

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Map adapter ``name`` to a model id the server serves (``path`` is that id, e.g. a vLLM LoRA name)."""
        self._adapters[name] = str(path)

    def _model_for(self, adapter: str | None) -> str:
        if adapter is None:
            return self.model
        if adapter in self._adapters:
            return self._adapters[adapter]
        raise NotFoundError(
            f"adapter {adapter!r} is not configured for {self.base_url}; known: {', '.join(self.adapters()) or 'none'}"
        )

    # -- requests -------------------------------------------------------------------------------------------

    def _body(
        self, params: SamplingParams, adapter: str | None, *, chat: bool, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model_for(adapter),
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.response_format is not None and chat:
            body["response_format"] = dict(params.response_format)
        if params.tools and chat:
            body["tools"] = [dict(t) for t in params.tools]
            if params.tool_choice is not None:
                body["tool_choice"] = (
                    params.tool_choice if isinstance(params.tool_choice, str) else dict(params.tool_choice)
                )
            if params.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = params.parallel_tool_calls
        if params.logprobs:
            if chat:
                body["logprobs"] = True
                if params.top_logprobs:
                    body["top_logprobs"] = params.top_logprobs
            else:
                body["logprobs"] = max(1, params.top_logprobs)  # legacy: the number of alternatives
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _error(self, resp: httpx.Response) -> BackendError | ConfigError:
        try:
            detail = resp.json()
            message = (
                detail.get("error", {}).get("message") if isinstance(detail.get("error"), dict) else None
            )
            message = message or detail.get("detail") or detail.get("error") or resp.text
        except (json.JSONDecodeError, AttributeError):
            message = resp.text
        text = str(message)[:300]
        code = ""
        with contextlib.suppress(Exception):
            code = str(resp.json()["error"].get("code") or "")
        if code == "context_length_exceeded" or (
            "context" in text.lower() and ("length" in text.lower() or "window" in text.lower())
        ):
            return ContextLengthError(
                f"{self.base_url}: the prompt is too long for the model ({text}); shorten it"
            )
        if resp.status_code in (400, 422):
            # The endpoint refused this request (a field it does not support, a bad value): the caller's to fix,
            # so it says what the endpoint said, without the endpoint's address.
            return RequestRejectedError(
                f"the model endpoint refused the request (HTTP {resp.status_code}): {text}"
            )
        if resp.status_code in (401, 403):
            return BackendError(
                f"{self.base_url} refused the API key (HTTP {resp.status_code}); set OPENAI_API_KEY"
            )
        if resp.status_code == 404:
            return BackendError(
                f"{self.base_url} answered 404 for model {self.model!r} ({text}); check the model name and base_url "
                "(it usually ends in /v1)"
            )
        return BackendError(f"{self.base_url} answered HTTP {resp.status_code}: {text}")

    def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST with retries; returns an open (streaming) response with a 2xx status."""
        attempt = 0
        stale_retry = True
        while True:
            try:
                request = self._client.build_request("POST", path, json=body)
                resp = self._client.send(request, stream=True)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # A pooled keep-alive connection the server had already closed (reset, or closed without an
                # answer): no response came back, so sending the request again on a fresh connection is safe.
                if stale_retry:
                    stale_retry = False
                    continue
                raise BackendError(
                    f"{self.base_url} dropped the connection twice; check the server"
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as err:
                if attempt >= self.max_retries:
                    raise BackendError(
                        f"cannot reach {self.base_url} ({type(err).__name__}: {err}) after {attempt + 1} tries; "
                        "start the server or fix the base_url"
                    ) from None
                self._sleep(attempt, None)
                attempt += 1
                continue
            if resp.status_code < 300:
                return resp
            resp.read()
            if resp.status_code in _RETRY_STATUS and attempt < self.max_retries:
                retry_after = resp.headers.get("retry-after")
                resp.close()
                self._sleep(attempt, retry_after)
                attempt += 1
                continue
            resp.close()
            raise self._error(resp)

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2**attempt) * (0.75 + 0.5 * random.random())  # exponential backoff + jitter
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), 60.0))
        time.sleep(delay)

    def _stream(self, path: str, body: dict[str, Any], *, chat: bool) -> Iterator[StreamChunk]:
        return self._stream_events(path, body, chat=chat)

    def _prompt_tokens_estimate(self, body: dict[str, Any]) -> int:
        # For servers that stream no usage (llama-cpp-python's): the server's tokenizer over the message
        # contents; the chat template's own tokens are not included.
        if "messages" in body:
            text = "\n".join(str(m.get("content", "")) for m in body["messages"])
        else:
            text = str(body.get("prompt", ""))
        return self.count_tokens(text)

    def _stream_events(self, path: str, body: dict[str, Any], *, chat: bool) -> Iterator[StreamChunk]:
        resp = self._send(path, body)
        finish: FinishReason = "stop"
        usage: Usage | None = None
        n_chunks = 0
        n_events = 0
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                n_events += 1
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError:
                    raise BackendError(
                        f"{self.base_url} sent a malformed stream event: {data[:100]}"
                    ) from None
                if "error" in event:
                    raise BackendError(f"{self.base_url} failed mid-stream: {event['error']}")
                if event.get("usage"):
                    usage = Usage(
                        prompt_tokens=int(event["usage"].get("prompt_tokens") or 0),
                        completion_tokens=int(event["usage"].get("completion_tokens") or 0),
                    )
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") if chat else choice.get("text")
                    calls = _tool_calls(delta.get("tool_calls")) if chat else None
                    lps = _logprobs(choice.get("logprobs"), chat=chat) or []
                    if lps:
                        for i, lp in enumerate(lps):
                            first = i == 0
                            yield StreamChunk(
                                text=(text or "") if first else "",
                                logprob=lp,
                                tool_calls=calls if first else None,
                            )
                        n_chunks += len(lps)
                    elif text or calls:
                        n_chunks += 1
                        yield StreamChunk(text=text or "", tool_calls=calls)
                    if choice.get("finish_reason"):
                        finish = _finish(choice["finish_reason"])
        except httpx.HTTPError as err:
            raise BackendError(
                f"the stream from {self.base_url} broke ({type(err).__name__}: {err}); retry"
            ) from None
        finally:
            resp.close()
        if n_events == 0:
            # Some servers (llama-cpp-python's) answer 200 and close an empty stream on a bad request, e.g. a
            # prompt longer than the context; the same request without streaming returns the real error.
            once = self._once(
                path, {k: v for k, v in body.items() if k not in ("stream", "stream_options")}, chat=chat
            )
            yield StreamChunk(text=once.text, tool_calls=once.tool_calls)
            yield StreamChunk(text="", finish_reason=once.finish_reason, usage=once.usage)
            return
        if usage is None:
            usage = Usage(prompt_tokens=self._prompt_tokens_estimate(body), completion_tokens=n_chunks)
        yield StreamChunk(text="", finish_reason=finish, usage=usage)

    def _once(self, path: str, body: dict[str, Any], *, chat: bool) -> Completion:
        t0 = time.perf_counter()
        resp = self._send(path, body)
        try:
            resp.read()
            data = resp.json()
        except (httpx.HTTPError, json.JSONDecodeError) as err:
            raise BackendError(
                f"{self.base_url} sent an unreadable answer ({err}); check the endpoint"
            ) from None
        finally:
            resp.close()
        total = time.perf_counter() - t0
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or "" if chat else choice["text"]
            calls = _tool_calls(choice["message"].get("tool_calls")) if chat else None
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.base_url} answered without choices: {str(data)[:200]}") from None
        u = data.get("usage") or {}
        return Completion(
            text=text,
            usage=Usage(
                prompt_tokens=int(u.get("prompt_tokens") or 0),
                completion_tokens=int(u.get("completion_tokens") or 0),
            ),
            finish_reason=_finish(choice.get("finish_reason")),
            model=self.name,
            logprobs=_logprobs(choice.get("logprobs"), chat=chat),
            tool_calls=calls,
            # Without streaming the first token is only seen with the last one.
            seconds_to_first_token=total,
            seconds_total=total,
        )

    # -- Backend API ----------------------------------------------------------------------------------------

    def chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        return chat_from_stream(self, messages, params, adapter)

    def complete(self, prompt: str, params: SamplingParams, *, adapter: str | None = None) -> Completion:
        return complete_from_stream(self, prompt, params, adapter)

    def chat_nostream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        """One non-streamed request (servers that cannot stream)."""
        body = self._body(params, adapter, chat=True, stream=False)
        body.pop("stream_options", None)
        body["messages"] = _wire_messages(messages)
        completion = self._once("/chat/completions", body, chat=True)
        completion.adapter = adapter
        return completion

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        body = self._body(params, adapter, chat=True, stream=True)
        body["messages"] = _wire_messages(messages)
        return self._stream("/chat/completions", body, chat=True)

    def stream_complete(
        self, prompt: str, params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        body = self._body(params, adapter, chat=False, stream=True)
        body["prompt"] = prompt
        return self._stream("/completions", body, chat=False)

    def batch_chat(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Send the requests concurrently (the server batches them if it can)."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            futures = [pool.submit(self.chat, r.messages, r.params, adapter=r.adapter) for r in requests]
            return [f.result() for f in futures]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the server's tokenizer where it has one (llama.cpp's /extras/tokenize)."""
        for path, key in (("/extras/tokenize", "input"), ("/tokenize", "content")):
            url = self.base_url.removesuffix("/v1") + path
            try:
                resp = self._client.post(url, json={key: text})
            except httpx.HTTPError:
                break
            if resp.status_code == 200:
                tokens = resp.json().get("tokens")
                if isinstance(tokens, list):
                    return len(tokens)
        # Fallback: ~4 characters per token for English (OpenAI's rule of thumb); an estimate, not a count.
        return max(1, round(len(text) / 4))

    def models(self) -> list[str]:
        """The model ids the endpoint serves (``GET /models``)."""
        try:
            resp = self._client.get("/models")
        except httpx.HTTPError as err:
            raise BackendError(
                f"cannot reach {self.base_url} ({err}); start the server or fix the base_url"
            ) from None
        if resp.status_code >= 300:
            raise self._error(resp)
        return [m["id"] for m in resp.json().get("data", [])]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        msg: dict[str, Any] = dict(m)
        if msg.get("tool_calls") and not msg.get("content"):
            msg["content"] = None  # OpenAI's shape of an assistant turn that only called tools
        out.append(msg)
    return out


def _finish(reason: Any) -> FinishReason:
    if reason == "length":
        return "length"
    return "tool_calls" if reason in ("tool_calls", "function_call") else "stop"


def _tool_calls(items: Any) -> list[ToolCall] | None:
    """OpenAI's ``tool_calls`` (a message's, or a stream delta's fragments) as ToolCalls."""
    if not isinstance(items, list):
        return None
    out = []
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        fn: dict[str, Any] = item["function"] if isinstance(item.get("function"), dict) else {}
        out.append(
            ToolCall(
                index=int(item["index"]) if isinstance(item.get("index"), int) else pos,
                id=str(item["id"]) if item.get("id") else None,
                name=str(fn["name"]) if fn.get("name") else None,
                arguments=str(fn.get("arguments") or ""),
                type=str(item.get("type") or "function"),
            )
        )
    return out or None


def _chat_logprob(t: dict[str, Any]) -> TokenLogprob:
    raw = t.get("bytes")
    return TokenLogprob(
        token=str(t.get("token", "")),
        logprob=float(t["logprob"]),
        raw=bytes(raw) if isinstance(raw, list) else None,
        top=tuple(_chat_logprob(a) for a in t.get("top_logprobs") or () if isinstance(a, dict)),
    )


def _logprobs(block: Any, *, chat: bool) -> list[TokenLogprob] | None:
    if not block:
        return None
    if chat:
        content = block.get("content") if isinstance(block, dict) else None
        if not content:
            return None
        return [_chat_logprob(t) for t in content]
    tokens, values = block.get("tokens") or [], block.get("token_logprobs") or []
    tops = block.get("top_logprobs") or [None] * len(tokens)
    return [
        TokenLogprob(
            token=str(t),
            logprob=float(v),
            top=tuple(
                sorted(
                    (TokenLogprob(token=str(k), logprob=float(x)) for k, x in (alt or {}).items()),
                    key=lambda a: -a.logprob,
                )
            ),
        )
        for t, v, alt in zip(tokens, values, tops)
        if v is not None
    ] or None
