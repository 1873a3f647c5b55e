"""Wire models and the one error shape (no server needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cadre.errors import BackendError, CapacityError, ConfigError, ContextLengthError, NotFoundError
from cadre.serve.errors import APIError, ClientGone
from cadre.serve.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from cadre.serve.workers import Admission


def test_unknown_and_ignored_fields_are_reported() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "frobnicate": True,
            "presence_penalty": 0.3,
        }
    )
    assert req.unknown_fields() == ["frobnicate", "presence_penalty"]
    plain = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert plain.unknown_fields() == []


def test_request_settings_override_the_specialist_defaults() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.7,
            "stop": "END",
            "seed": 3,
        }
    )
    p = req.to_sampling_params(max_tokens=99, temperature=0.0, top_p=0.9, stop=("\n",))
    assert (p.max_tokens, p.temperature, p.top_p, p.stop, p.seed) == (99, 0.7, 0.9, ("END",), 3)
    newer = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 5,
            "max_completion_tokens": 7,
        }
    )
    assert newer.to_sampling_params(max_tokens=99, temperature=0, top_p=1, stop=()).max_tokens == 7


def test_messages_text_parts_and_roles() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
        }
    )
    assert req.chat_messages() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]
    image = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        }
    )
    with pytest.raises(ValueError, match="image_url"):
        image.chat_messages()


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
        {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]},
    ],
)
def test_invalid_chat_requests(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)


def test_completion_and_embedding_inputs() -> None:
    assert CompletionRequest.model_validate({"model": "m", "prompt": ["only"]}).prompt_text() == "only"
    with pytest.raises(ValueError, match="exactly one"):
        CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]}).prompt_text()
    assert EmbeddingRequest.model_validate({"model": "e", "input": "x"}).texts() == ["x"]


@pytest.mark.parametrize(
    ("err", "status", "code"),
    [
        (NotFoundError("unknown model 'x'"), 404, "model_not_found"),
        (ContextLengthError("too long"), 400, "context_length_exceeded"),
        (CapacityError("full"), 429, "queue_full"),
        (ConfigError("bad"), 400, "invalid_value"),
        (BackendError("down"), 502, "backend_error"),
        (TimeoutError(), 504, "timeout"),
        (ClientGone(), 499, "client_closed"),
        (RuntimeError("secret internals"), 500, "internal_error"),
    ],
)
def test_library_errors_map_to_http(err: Exception, status: int, code: str) -> None:
    api = APIError.from_exception(err)
    assert (api.status, api.code) == (status, code)
    assert "secret internals" not in api.message  # unexpected errors never leak their text
    assert api.type in {
        "invalid_request_error",
        "not_found_error",
        "rate_limit_error",
        "server_error",
        "client_closed",
    }
    assert "Traceback" not in api.message


def test_admission_bounds_requests_and_hints_a_retry() -> None:
    adm = Admission(2)
    a, b = adm.acquire(), adm.acquire()
    with pytest.raises(CapacityError, match="queue_size=2"):
        adm.acquire()
    assert adm.retry_after_s() >= 1
    adm.release(a)
    c = adm.acquire()
    adm.release(b)
    adm.release(c)
    assert adm.active == 0
