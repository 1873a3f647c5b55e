"""The recipes of docs/integrations.md, run against a real `cadre serve`: the openai SDK (sync, async, streaming),
LiteLLM and LangChain. A client library that is not installed skips with the reason."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.slow

QUESTION = "I was charged twice for my order"


def test_openai_sync(cadre_server) -> None:  # type: ignore[no-untyped-def]
    from openai import OpenAI

    client = OpenAI(base_url=cadre_server.url, api_key=cadre_server.key)
    reply = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": QUESTION}])
    assert reply.choices[0].message.content
    assert reply.model == "billing"  # who answered
    assert reply.model_extra["cadre"]["route"] == "billing"  # and why: route, reason, score
    named = client.chat.completions.create(
        model="shipping", messages=[{"role": "user", "content": "where is my parcel"}], max_tokens=4
    )
    assert named.model == "shipping" and named.usage.completion_tokens <= 4


def test_openai_async(cadre_server) -> None:  # type: ignore[no-untyped-def]
    from openai import AsyncOpenAI

    async def ask() -> list[str]:
        client = AsyncOpenAI(base_url=cadre_server.url, api_key=cadre_server.key)
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(model=m, messages=[{"role": "user", "content": QUESTION}])
                for m in ("auto", "billing")
            )
        )
        await client.close()
        return [r.model for r in replies]

    assert asyncio.run(ask()) == ["billing", "billing"]


def test_openai_streaming(cadre_server) -> None:  # type: ignore[no-untyped-def]
    from openai import OpenAI

    client = OpenAI(base_url=cadre_server.url, api_key=cadre_server.key)
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) >= 2 and "".join(pieces).strip()


def test_litellm(cadre_server) -> None:  # type: ignore[no-untyped-def]
    litellm = pytest.importorskip(
        "litellm",
        reason="LiteLLM is not installed here: its dependencies (botocore) would downgrade python-dateutil 4.0 "
        "in the shared environment; the recipe runs wherever `pip install litellm` works",
    )
    reply = litellm.completion(
        model="openai/auto",
        api_base=cadre_server.url,
        api_key=cadre_server.key,
        messages=[{"role": "user", "content": QUESTION}],
    )
    assert reply.choices[0].message.content


def test_langchain(cadre_server) -> None:  # type: ignore[no-untyped-def]
    langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")

    chat = langchain_openai.ChatOpenAI(
        model="auto", base_url=cadre_server.url, api_key=cadre_server.key, max_tokens=8
    )
    answer = chat.invoke(QUESTION)
    assert isinstance(answer.content, str) and answer.content
    assert answer.response_metadata["model_name"] == "billing"
    streamed = "".join(str(chunk.content) for chunk in chat.stream(QUESTION))
    assert streamed.strip()
