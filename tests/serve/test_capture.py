"""Capture in the gateway (cadre.traffic): a real server on the bundled SmolLM2, the official openai client, and
the SQLite file read back, byte by byte, for anything unredacted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from cadre.traffic import open_store

from .conftest import LiveServer, small_spec

CARD, EMAIL, PHONE, IBAN = (
    "4111 1111 1111 1111",
    "jane.doe@example.com",
    "+1 415-555-2671",
    "GB82WEST12345698765432",
)


def disk_bytes(db: Path) -> bytes:
    return b"".join(Path(f"{db}{s}").read_bytes() for s in ("", "-wal", "-shm") if Path(f"{db}{s}").exists())


def test_generalist_answers_are_captured_redacted_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "traffic.db"
    price = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
    spec = small_spec(capture={"store": str(db), "models": ["generalist"], "prices": {"generalist": price}})
    with LiveServer(spec) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="-", max_retries=0, timeout=120)
        chat = client.chat.completions.create(
            model="generalist",
            messages=[{"role": "user", "content": f"My card is {CARD}, mail {EMAIL}"}],
            max_tokens=4,
        )
        pieces = []
        stream = client.chat.completions.create(
            model="generalist",
            messages=[{"role": "user", "content": f"IBAN {IBAN} please"}],
            max_tokens=4,
            stream=True,
        )
        for chunk in stream:
            stream_id = chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        done = client.completions.create(model="generalist", prompt=f"Call {PHONE} now", max_tokens=4)
        client.chat.completions.create(  # a specialist's answer: not listed in capture.models
            model="support", messages=[{"role": "user", "content": f"mail {EMAIL}"}], max_tokens=2
        )
        assert live.gateway.capture.recorder.flush()
        running = disk_bytes(db)
        metrics = httpx.get(f"{live.url}/metrics").text
    assert 'cadre_capture_records_total{outcome="written"} 3.0' in metrics
    assert 'cadre_capture_redactions_total{type="card"} 1.0' in metrics
    assert 'cadre_capture_records_total{outcome="dropped"} 0.0' in metrics
    for data in (running, disk_bytes(db)):
        for value in (CARD, EMAIL, PHONE, IBAN):
            assert value.encode() not in data
    with open_store(db) as store:
        rows = store.records()
    assert [r.request_id for r in rows] == [chat.id, stream_id, done.id]  # the response ids clients saw
    first, streamed, completion = rows
    assert first.prompt == "My card is [CARD], mail [EMAIL]"
    assert first.redactions == {"card": 1, "email": 1}
    assert first.response == chat.choices[0].message.content
    assert (first.prompt_tokens, first.completion_tokens) == (
        chat.usage.prompt_tokens,
        chat.usage.completion_tokens,
    )
    assert first.cost == (chat.usage.prompt_tokens * 1000 + chat.usage.completion_tokens * 2000) / 1e6
    assert first.latency_s > 0 and first.model == "generalist" and first.requested == "generalist"
    assert streamed.prompt == "IBAN [IBAN] please" and streamed.response == "".join(pieces)
    assert completion.endpoint == "complete" and completion.prompt == "Call [PHONE] now"


def test_capture_is_off_without_the_block(tmp_path: Path) -> None:
    with LiveServer(small_spec()) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="-", max_retries=0, timeout=120)
        client.chat.completions.create(
            model="generalist", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        assert live.gateway.capture.recorder is None
        assert "cadre_capture" not in httpx.get(f"{live.url}/metrics").text


def test_capture_to_postgresql_through_the_gateway(pg_store_url: Callable[[str], str]) -> None:
    """capture.store a postgresql:// URL: an answer and a feedback label reach PostgreSQL, redacted."""
    url = pg_store_url("serve_capture_")
    with LiveServer(small_spec(capture={"store": url})) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="-", max_retries=0, timeout=120)
        chat = client.chat.completions.create(
            model="generalist", messages=[{"role": "user", "content": f"mail {EMAIL}"}], max_tokens=1
        )
        r = httpx.post(
            f"{live.url}/v1/feedback", json={"response_id": chat.id, "label": f"to {EMAIL}"}, timeout=60
        )
        assert r.status_code == 202
        assert live.gateway.capture.recorder.flush()
        assert live.gateway.capture.recorder.stats()["written"] == 2
    with open_store(url) as store:
        (row,) = store.records()
        fb = store.feedback()[chat.id]
    assert (row.request_id, row.prompt, row.redactions) == (chat.id, "mail [EMAIL]", {"email": 1})
    assert (fb.label, fb.source) == ("to [EMAIL]", "api")
