"""OpenAI wire models: what clients send and what the server answers.

Requests accept extra fields (a client may send anything a newer OpenAI API knows) but never drop them
silently: :meth:`OpenAIRequest.unknown_fields` lists them and the serving layer logs them. Requests turn
themselves into the runtime's :class:`~cadre.runtime.protocol.SamplingParams` (``to_sampling_params``).

Responses carry one extra field, ``cadre`` (who answered and why, citations when grounded), which the official
``openai`` client keeps as an attribute (``response.cadre``) without complaint.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cadre.runtime.protocol import ChatMessage, SamplingParams

__all__ = [
    "CadreInfo",
    "ChatChoice",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatMessageIn",
    "ChunkChoice",
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResponse",
    "DeltaMessage",
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorBody",
    "ErrorResponse",
    "ModelCard",
    "ModelList",
    "UsageInfo",
    "new_id",
]

# Fields of the OpenAI API that cadre accepts but does not act on; they are logged once per request.
IGNORED_FIELDS = frozenset(
    {"presence_penalty", "frequency_penalty", "logit_bias", "user", "metadata", "store", "service_tier"}
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class OpenAIRequest(BaseModel):
    """Base of every request: extra fields are kept (to be logged), not rejected and not dropped."""

    model_config = ConfigDict(extra="allow")

    def unknown_fields(self) -> list[str]:
        """Fields the client sent that cadre does not act on (unknown ones and known-but-ignored ones)."""
        extra = sorted(self.model_extra or {})
        ignored = sorted(f for f in IGNORED_FIELDS & self.model_fields_set)
        return extra + ignored


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: the call it answers

    def text(self) -> str:
        """The message's text; only text parts are supported (an image part is a 400 upstream)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        out = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ValueError(f"content part of type {part.type!r} is not supported; send text parts")
            out.append(part.text)
        return "".join(out)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


def _stop_tuple(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


class _Sampling(OpenAIRequest):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="only one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def tool_fields(self) -> list[str]:
        """The tool-calling fields of the request that change what a correct answer is."""
        return []

    def logprobs_wanted(self) -> int | None:
        """None when no logprobs are asked for, else how many alternatives per token (0: only the chosen)."""
        return None

    def json_format(self) -> tuple[bool, dict[str, Any] | None]:
        return False, None

    def to_sampling_params(
        self,
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        stop: tuple[str, ...],
        logprobs: bool = False,
    ) -> SamplingParams:
        """Merge this request's settings over the specialist's decoding defaults (passed in)."""
        return SamplingParams(
            max_tokens=self.requested_max_tokens() or max_tokens,
            temperature=temperature if self.temperature is None else self.temperature,
            top_p=top_p if self.top_p is None else self.top_p,
            seed=self.seed,
            stop=_stop_tuple(self.stop) or stop,
            logprobs=logprobs,
        )


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None  # the deprecated form of tools
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def tool_fields(self) -> list[str]:
        """Tool-calling fields that change what a correct answer is: ``tools`` / ``functions``, a ``tool_choice``
        other than ``"none"`` / ``"auto"`` (those without tools ask for plain text), and earlier turns that
        carry tool calls. Tools with ``tool_choice: "none"`` ask for plain text too."""
        fields = []
        if self.tools and self.tool_choice != "none":
            fields.append("tools")
        if self.functions and self.function_call != "none":
            fields.append("functions")
        if self.tool_choice not in (None, "none", "auto"):
            fields.append("tool_choice")
        if self.function_call not in (None, "none", "auto"):
            fields.append("function_call")
        if any(m.tool_calls for m in self.messages):
            fields.append("messages")
        return fields

    def logprobs_wanted(self) -> int | None:
        """Raises ValueError for ``top_logprobs`` without ``logprobs: true`` (OpenAI refuses it too)."""
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true; send both")
        return (self.top_logprobs or 0) if self.logprobs else None

    def json_format(self) -> tuple[bool, dict[str, Any] | None]:
        """(whether JSON output is asked for, its JSON Schema if one is given) from ``response_format``.

        Raises:
            ValueError: ``response_format`` is not one of OpenAI's shapes.
        """
        rf = self.response_format
        if rf is None or rf.get("type") == "text":
            return False, None
        if rf.get("type") == "json_object":
            return True, None
        if rf.get("type") == "json_schema":
            spec = rf.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise ValueError("response_format.json_schema.schema must be a JSON Schema object")
            return True, schema
        raise ValueError(
            f"response_format.type {rf.get('type')!r} is not one of 'text', 'json_object', 'json_schema'"
        )

    def chat_messages(self) -> list[ChatMessage]:
        out: list[ChatMessage] = []
        for i, m in enumerate(self.messages):
            if m.content is None and not (m.role == "assistant" and m.tool_calls):
                raise ValueError(
                    f"messages.{i}.content is null: send a string or a list of text parts (only an assistant "
                    "message with tool_calls may have null content)"
                )
            role = "system" if m.role == "developer" else m.role
            msg: ChatMessage = {"role": role, "content": m.text()}
            if m.tool_calls:
                msg["tool_calls"] = m.tool_calls
            if m.tool_call_id is not None:
                msg["tool_call_id"] = m.tool_call_id
            out.append(msg)
        return out

    def prompt_chars(self) -> int:
        return sum(len(m["content"]) for m in self.chat_messages())


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5, description="alternatives per token (0: only the chosen)")

    def logprobs_wanted(self) -> int | None:
        return self.logprobs

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise ValueError("send exactly one prompt per request")
        return self.prompt[0]


class EmbeddingRequest(OpenAIRequest):
    model: str
    input: str | list[str] = Field(description="a text or a list of texts (token arrays are not supported)")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class CadreInfo(BaseModel):
    """Who answered and why (the ``cadre`` field of every response)."""

    route: str
    reason: str = ""
    score: float | None = None
    requested: str = ""
    fallback: bool = False
    citations: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[dict[str, Any]] | None = None  # a pipeline's trace, one entry per step
    run_id: str | None = None  # a pipeline run's id


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    cadre: CadreInfo


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None
    cadre: CadreInfo | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
    cadre: CadreInfo | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cadre"
    parent: str | None = None
    description: str = ""
    kind: Literal["specialist", "generalist", "router", "embedding", "pipeline"] = "specialist"
    adapter: bool = False


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: UsageInfo


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
