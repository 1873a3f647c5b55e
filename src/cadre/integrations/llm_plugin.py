"""A plugin for simonw's ``llm`` CLI: ``llm -m cadre-auto "..."`` and ``llm -m cadre/<specialist> "..."``.

Each call goes to a running ``cadre serve`` over its OpenAI-compatible API (the ``openai`` client), so the
plugin loads no model. Where the server is:

- URL: ``llm keys set cadre-url`` (paste e.g. ``http://127.0.0.1:8000/v1``) or ``$CADRE_BASE_URL``; default
  ``http://127.0.0.1:8000/v1``. A URL without ``/v1`` gets it appended.
- key: ``llm keys set cadre`` or ``$CADRE_API_KEY``; none is sent when neither is set (a loopback server
  without ``--api-key`` needs none).

``llm models`` lists ``cadre-auto`` (the router chooses) and, when the server answers ``GET /v1/models``,
``cadre/<name>`` for every model it serves. Streaming (the default) and conversations (``llm -c``, ``llm chat``)
work: the whole conversation is sent with every turn. The route that answered is kept in the log
(``llm logs --json``: ``response_json.cadre``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import llm
from pydantic import Field

__all__ = [
    "DEFAULT_URL",
    "KEY_ALIAS",
    "KEY_ENV",
    "URL_ALIAS",
    "URL_ENV",
    "CadreModel",
    "base_url",
    "register_models",
    "served_model_ids",
]

DEFAULT_URL = "http://127.0.0.1:8000/v1"
URL_ALIAS, URL_ENV = "cadre-url", "CADRE_BASE_URL"
KEY_ALIAS, KEY_ENV = "cadre", "CADRE_API_KEY"
LIST_TIMEOUT_S = 2.0  # `llm models` must not hang on a server that is down


def base_url() -> str:
    """The server's ``.../v1`` URL from ``llm keys`` (``cadre-url``), ``$CADRE_BASE_URL`` or the default."""
    url = (llm.get_key(key_alias=URL_ALIAS, env_var=URL_ENV) or DEFAULT_URL).strip().rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _api_key() -> str | None:
    return llm.get_key(key_alias=KEY_ALIAS, env_var=KEY_ENV) or None


def served_model_ids(url: str, key: str | None) -> list[str]:
    """The chat models ``GET /v1/models`` lists (specialists, the generalist; not ``auto`` nor the embedding
    model, which cadre marks with ``kind``), or ``[]`` when the server cannot be reached."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        reply = httpx.get(f"{url}/models", headers=headers, timeout=LIST_TIMEOUT_S)
        reply.raise_for_status()
        cards = [m for m in reply.json().get("data", []) if isinstance(m, dict) and "id" in m]
    except (httpx.HTTPError, ValueError, KeyError):
        return []
    return [str(m["id"]) for m in cards if m.get("kind") not in ("embedding", "router") and m["id"] != "auto"]


@llm.hookimpl
def register_models(register: Any) -> None:
    """``cadre-auto`` always; ``cadre/<id>`` for each model a reachable server lists."""
    url = base_url()
    register(CadreModel("cadre-auto", served="auto", url=url), aliases=("cadre",))
    for served in served_model_ids(url, _api_key()):
        register(CadreModel(f"cadre/{served}", served=served, url=url))


def _text(message: Any) -> str:
    """The text parts of an ``llm`` message (attachments and tool parts are not sent)."""
    return "".join(getattr(part, "text", None) or "" for part in getattr(message, "parts", []))


def _history(prompt: Any, conversation: Any) -> list[dict[str, str]]:
    """The chat messages for this turn: the whole conversation, then the new prompt."""
    chain = getattr(prompt, "messages", None)
    if chain is not None:  # llm >= 0.26: the full chain, history included
        return [
            {"role": m.role, "content": _text(m)}
            for m in chain
            if m.role in ("system", "user", "assistant") and _text(m)
        ]
    messages: list[dict[str, str]] = []
    for previous in conversation.responses if conversation is not None else []:
        if previous.prompt.system and not messages:
            messages.append({"role": "system", "content": previous.prompt.system})
        messages += [
            {"role": "user", "content": previous.prompt.prompt},
            {"role": "assistant", "content": previous.text()},
        ]
    if prompt.system and not messages:
        messages.append({"role": "system", "content": prompt.system})
    messages.append({"role": "user", "content": prompt.prompt})
    return messages


class CadreModel(llm.Model):
    """One model of a ``cadre serve`` endpoint (``served="auto"``: the router picks the specialist)."""

    can_stream = True

    class Options(llm.Options):
        temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
        max_tokens: int | None = Field(None, ge=1, description="most tokens to generate")
        top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")

    def __init__(self, model_id: str, *, served: str, url: str) -> None:
        self.model_id = model_id
        self.served = served
        self.url = url

    def execute(self, prompt: Any, stream: bool, response: Any, conversation: Any) -> Iterator[str]:
        import openai

        options = {k: v for k, v in prompt.options.model_dump().items() if v is not None}
        client = openai.OpenAI(base_url=self.url, api_key=_api_key() or "no-key", max_retries=0)
        request: dict[str, Any] = {
            "model": self.served,
            "messages": _history(prompt, conversation),
            **options,
        }
        try:
            if stream:
                yield from self._stream(client, request, response)
            else:
                reply = client.chat.completions.create(**request)
                yield reply.choices[0].message.content or ""
                self._record(response, reply.model, reply.model_extra, reply.usage)
        except openai.APIConnectionError:
            raise llm.ModelError(
                f"cannot reach cadre serve at {self.url}: start it (`cadre serve ecosystem.yaml`) or point "
                f"`llm keys set {URL_ALIAS}` / ${URL_ENV} at it"
            ) from None
        except openai.APIStatusError as err:
            raise llm.ModelError(f"cadre serve answered {err.status_code}: {_error_message(err)}") from None

    def _stream(self, client: Any, request: dict[str, Any], response: Any) -> Iterator[str]:
        chunks = client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        model, extra, usage = self.served, None, None
        for chunk in chunks:
            model = chunk.model or model
            extra = extra or (chunk.model_extra or {}).get("cadre")  # the route comes in the first chunk
            usage = chunk.usage or usage
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
        self._record(response, model, {"cadre": extra}, usage)

    @staticmethod
    def _record(response: Any, model: str, extra: dict[str, Any] | None, usage: Any) -> None:
        response.response_json = {"model": model, "cadre": (extra or {}).get("cadre")}
        if usage is not None:
            response.set_usage(input=usage.prompt_tokens, output=usage.completion_tokens)


def _error_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(err)
