"""Two real servers on loopback: an upstream OpenAI-compatible server (a second cadre, standing in for a vLLM
server with ``--enable-lora``: one base, adapters addressed by ``model``) and the gateway in front of it.

Covers model="auto" routing, the generalist over HTTP with its key from an env var, a specialist living on the
remote server (scale-out), fallback when a specialist fails, embeddings, hot reload through the admin API, and
the generalist endpoint dying mid-run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from cadre.runtime.bundled import bundled_model_path
from cadre.serve import ApiKeys, parse_ecosystem

from .conftest import LiveServer, small_spec

UPSTREAM_KEY = "upstream-secret-1"
ADMIN_KEY = "admin-secret-12"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

SUPPORT = [
    "I want a refund for my last order",
    "My package has not arrived yet, where is it?",
    "How do I reset my password?",
    "Can I change the delivery address of my order?",
    "I was charged twice for the same purchase",
    "Please cancel my subscription",
    "The item I received is damaged, what should I do?",
    "I cannot log in to my account",
    "Do you offer exchanges for a different size?",
    "My order arrived with a missing item",
]
INVOICES = [
    "Invoice INV-2041 from Acme Corp dated 2024-03-02, total due $1,250.00",
    "Extract the fields: Bill no. 7781, Globex Ltd, 12 March 2024, amount 980 EUR",
    "Parse this invoice: Number 55-A, vendor Initech, date 03/15/2024, total 4,300.50 USD",
    "Receipt #A-19 from Umbrella Inc., issued on April 1 2024, grand total 75.20",
    "Get the total and vendor from: Stark Industries invoice 9001, 2024-05-20, $12,000",
    "Invoice number 3321 Wayne Enterprises 2024/06/11 balance due 560.00 GBP",
    "Turn this invoice into JSON: Hooli, inv 88, 7 July 2024, total 1999 USD",
    "Vendor: Soylent Co. Invoice: S-402. Date: 2024-08-30. Total: 310.75",
    "Invoice 6120 from Vandelay Industries, amount due $845.10",
    "Pied Piper invoice PP-7, 09/09/2024, total 2,450.00",
]
OUT_OF_SCOPE = [
    "Write a haiku about autumn leaves",
    "What is the capital of Australia?",
    "Explain how photosynthesis works",
    "Translate 'good morning' into Spanish",
    "Who wrote Pride and Prejudice?",
    "Give me a recipe for pancakes",
    "What is 17 times 23?",
    "Summarize the plot of Hamlet",
]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, unused_port: Callable[[], int]
) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("CADRE_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    upstream = LiveServer(small_spec(), api_keys=[UPSTREAM_KEY]).start()
    remote = f"http://127.0.0.1:{upstream.port}/v1"
    base_dir = tmp_path_factory.mktemp("eco")
    (base_dir / "adapters").mkdir()
    spec = parse_ecosystem(
        {
            "specialists": [
                {
                    # scale-out: this specialist lives on the upstream server; the adapter is the name it serves
                    # it under (vLLM: --lora-modules support=/path/to/adapter)
                    "name": "support",
                    "base": f"openai:smollm2-135m@{remote}",
                    "adapter": "support",
                    "api_key_env": "CADRE_TEST_UPSTREAM_KEY",
                    "examples": SUPPORT,
                    "decoding": {"max_tokens": 6},
                },
                {
                    "name": "invoices",
                    "base": "smollm2-135m",
                    "examples": INVOICES,
                    "system_prompt": "Extract the invoice fields as JSON.",
                    "decoding": {"max_tokens": 6},
                },
                {
                    "name": "broken",
                    "base": f"openai:nothing@http://127.0.0.1:{unused_port()}/v1",
                    "decoding": {"max_tokens": 4},
                },
            ],
            "router": {"build": {"strategy": "centroid", "folds": 3}, "out_of_scope": OUT_OF_SCOPE},
            "generalist": {
                "model": f"openai:generalist@{remote}",
                "api_key_env": "CADRE_TEST_UPSTREAM_KEY",
                "decoding": {"max_tokens": 6},
            },
            "server": {"specialist_timeout_s": 30, "generalist_timeout_s": 30, "admin": True},
        },
        source="test",
        base_dir=base_dir,
    )
    gateway = LiveServer(spec, admin_keys=ApiKeys([ADMIN_KEY], kind="admin key")).start()
    try:
        yield {"upstream": upstream, "gateway": gateway, "base_dir": base_dir}
    finally:
        gateway.stop()
        if upstream.thread.is_alive():
            upstream.stop()
        mp.undo()


def oa(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-locally", max_retries=0, timeout=120)


def ask(server: LiveServer, model: str, text: str, **kw: Any) -> Any:
    return oa(server).chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


@pytest.mark.slow
def test_auto_routes_each_request_to_the_right_specialist(servers: dict[str, Any]) -> None:
    gw = servers["gateway"]
    refund = oa(gw).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "I need a refund, my order never arrived"}]
    )
    assert refund.headers["x-cadre-route"] == "support"
    body = refund.parse()
    assert body.model == "support"
    assert body.model_extra["cadre"]["requested"] == "auto"  # type: ignore[index]
    assert 0 <= float(refund.headers["x-cadre-score"]) <= 1
    invoice = ask(gw, "auto", "Invoice 5521 from Initech, 2024-02-01, total due 99.00 EUR")
    assert invoice.model == "invoices"
    stream = oa(gw).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Parse: Acme invoice 12, total $40"}], stream=True
    )
    first = next(iter(stream))
    assert first.model_extra["cadre"]["route"] == "invoices"  # type: ignore[index]
    stream.close()
    poem = ask(gw, "auto", "Write a limerick about a cat who sails the ocean")
    assert poem.model_extra["cadre"]["route"] == "generalist", poem.model_extra  # type: ignore[index]
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'cadre_routed_requests_total{how="router",route="support"}' in metrics
    assert "cadre_router_seconds_count" in metrics


@pytest.mark.slow
def test_generalist_and_scale_out_specialist_over_http(servers: dict[str, Any]) -> None:
    gw, up = servers["gateway"], servers["upstream"]
    before = up.gateway.metrics.routed.labels("support", "name")._value.get()
    r = ask(gw, "support", "Where is my parcel?")
    assert r.model == "support" and r.choices[0].message.content
    # the request really went to the upstream server, addressed by the adapter name
    assert up.gateway.metrics.routed.labels("support", "name")._value.get() == before + 1
    assert r.usage is not None and r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 0
    g = ask(gw, "generalist", "Say hello")
    assert g.model == "generalist" and g.choices[0].message.content
    chunks = list(
        oa(gw).chat.completions.create(
            model="generalist",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == g.choices[0].message.content
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == g.usage.completion_tokens  # type: ignore[union-attr]


@pytest.mark.slow
def test_response_format_is_passed_through_to_an_openai_backend(servers: dict[str, Any]) -> None:
    """The generalist lives on the upstream server: cadre forwards response_format, the upstream honours it."""
    gw, up = servers["gateway"], servers["upstream"]
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    r = ask(
        gw,
        "generalist",
        "Are you there? Answer in JSON.",
        max_tokens=16,
        response_format={"type": "json_schema", "json_schema": {"name": "ok", "schema": schema}},
    )
    assert isinstance(json.loads(r.choices[0].message.content or "")["ok"], bool)
    assert up.gateway.metrics.routed.labels("generalist", "name")._value.get() >= 1
    # tools are forwarded too; the upstream's model (llama.cpp) cannot honour them and says so: its 400 comes back
    # as a 400 with its message (not a 502, not plain text), without the upstream's address
    with pytest.raises(openai.BadRequestError) as err:
        ask(gw, "generalist", "hi", tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    message = err.value.body["message"]  # type: ignore[index]
    assert "tools is not supported for model 'generalist'" in message and "127.0.0.1" not in message


@pytest.mark.slow
def test_failing_specialist_falls_back_to_the_generalist_and_is_counted(servers: dict[str, Any]) -> None:
    gw = servers["gateway"]
    raw = oa(gw).chat.completions.with_raw_response.create(
        model="broken", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-cadre-route"] == "generalist" and raw.headers["x-cadre-fallback"] == "1"
    info = raw.parse().model_extra["cadre"]  # type: ignore[index]
    assert info["fallback"] is True and "broken" in info["reason"]
    stream = list(
        oa(gw).chat.completions.create(
            model="broken", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert stream[0].model_extra["cadre"]["route"] == "generalist"  # type: ignore[index]
    assert gw.gateway.metrics.fallbacks.labels("broken", "error")._value.get() >= 2


@pytest.mark.slow
def test_embeddings_with_the_openai_client(servers: dict[str, Any]) -> None:
    gw = servers["gateway"]
    r = oa(gw).embeddings.create(model="all-minilm-l6-v2", input=["refund my order", "invoice total"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384
    norm = sum(x * x for x in r.data[0].embedding) ** 0.5
    assert abs(norm - 1) < 1e-3
    # exact usage: the embedder's own tokenizer count ([CLS] ... [SEP] included)
    from cadre.runtime.embeddings import get_embedder

    tok = get_embedder()._model.tokenizer
    assert r.usage.prompt_tokens == sum(
        len(ids) for ids in tok(["refund my order", "invoice total"])["input_ids"]
    )
    floats = httpx.post(
        f"{gw.url}/v1/embeddings",
        json={"model": "minilm", "input": "refund my order", "encoding_format": "float"},
    ).json()
    assert floats["data"][0]["embedding"] == pytest.approx(r.data[0].embedding, abs=1e-6)
    with pytest.raises(openai.NotFoundError):
        oa(gw).embeddings.create(model="text-embedding-3-small", input="x")


@pytest.mark.slow
def test_hot_reload_adds_and_replaces_a_specialist_without_dropping_requests(servers: dict[str, Any]) -> None:
    from runtime.lora_files import write_random_lora  # tests/runtime helper (random GGUF LoRA for SmolLM2)

    gw, base_dir = servers["gateway"], servers["base_dir"]
    base = bundled_model_path("smollm2-135m")
    write_random_lora(base, base_dir / "adapters" / "dates.gguf", seed=1)
    result: dict[str, Any] = {}

    def long_request() -> None:
        stream = oa(gw).completions.create(
            model="invoices", prompt="1, 2, 3, 4, 5,", max_tokens=48, stream=True
        )
        result["text"] = "".join(c.choices[0].text for c in stream if c.choices)

    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(0.3)
    url = f"{gw.url}/admin/specialists"
    spec = {
        "name": "dates",
        "base": "smollm2-135m",
        "adapter": "adapters/dates.gguf",
        "decoding": {"max_tokens": 4},
    }
    added = httpx.post(url, json=spec, headers=ADMIN, timeout=120).json()
    assert added["specialist"] == "dates" and added["replaced"] is False and "dates" in added["added"]
    t.join(timeout=120)
    assert result.get("text"), "the in-flight request was dropped by the reload"
    cards = {m.id: m.model_dump() for m in oa(gw).models.list().data}
    assert cards["dates"]["adapter"] is True
    r = ask(gw, "dates", "Normalize the date: 3rd of May 2024")
    assert r.model == "dates" and r.usage is not None and r.usage.completion_tokens >= 1
    # replace it with a new adapter file: a new adapter id on the same loaded base
    write_random_lora(base, base_dir / "adapters" / "dates2.gguf", seed=2)
    replaced = httpx.post(
        url, json={**spec, "adapter": "adapters/dates2.gguf"}, headers=ADMIN, timeout=120
    ).json()
    assert replaced["replaced"] is True
    assert gw.gateway.snapshot.targets["dates"].adapter == "dates.v2"
    assert ask(gw, "dates", "Normalize: May 3 2024").model == "dates"
    # no paths outside the adapter root, and no path-like names
    bad = httpx.post(url, json={**spec, "adapter": "../../../etc/passwd"}, headers=ADMIN)
    assert bad.status_code == 400 and "outside" in bad.json()["error"]["message"]
    assert httpx.post(url, json={**spec, "name": "../x"}, headers=ADMIN).status_code == 400
    bad_base = httpx.post(url, json={**spec, "base": "/tmp/some-model.gguf"}, headers=ADMIN)
    assert bad_base.status_code == 400 and "no file paths" in bad_base.json()["error"]["message"]
    # a file in the adapter root that is not a GGUF adapter is a 400 naming the file, not a 500
    (base_dir / "adapters" / "notes.gguf").write_text("not an adapter")
    junk = httpx.post(url, json={**spec, "adapter": "adapters/notes.gguf"}, headers=ADMIN, timeout=120)
    assert junk.status_code == 400 and "notes.gguf" in junk.json()["error"]["message"], junk.text
    assert str(base_dir) not in junk.text  # no absolute server path in what a client sees
    removed = httpx.delete(f"{gw.url}/admin/specialists/dates", headers=ADMIN, timeout=120).json()
    assert "dates" in removed["removed"]
    assert httpx.get(f"{gw.url}/health").json()["status"] == "ok"


@pytest.mark.slow
def test_generalist_endpoint_dies_mid_run_and_the_rest_keeps_answering(servers: dict[str, Any]) -> None:
    gw, up = servers["gateway"], servers["upstream"]
    up.stop()  # the generalist (and the remote specialist) are gone
    with pytest.raises(openai.APIStatusError) as err:
        ask(gw, "generalist", "hello")
    assert err.value.status_code == 502
    assert err.value.body["code"] == "backend_error"  # type: ignore[index]
    assert "Traceback" not in str(err.value.body)
    assert (
        ask(gw, "invoices", "Invoice 1 from Acme, total $3").model == "invoices"
    )  # local specialist unaffected
    with pytest.raises(openai.APIStatusError) as err:
        ask(gw, "broken", "hello")  # its fallback is gone too: an error, not a hang
    assert err.value.status_code == 502
    assert httpx.get(f"{gw.url}/health").status_code == 200


def test_template_path_is_resolved(tmp_path: Path) -> None:
    spec = parse_ecosystem(
        {"specialists": [{"name": "a"}], "server": {"fallback": "error"}}, base_dir=tmp_path
    )
    assert spec.adapter_root() == tmp_path.resolve()


@pytest.mark.slow
def test_router_from_a_saved_folder_matches_the_one_fitted_from_the_spec(tmp_path: Path) -> None:
    from cadre.route import save_router
    from cadre.serve.wiring import build_router

    data = {
        "specialists": [{"name": "support", "examples": SUPPORT}, {"name": "invoices", "examples": INVOICES}],
        "router": {"build": {"strategy": "centroid", "folds": 3}, "out_of_scope": OUT_OF_SCOPE},
        "server": {"fallback": "error"},
    }
    fitted, note = build_router(parse_ecosystem(data))
    assert fitted is not None and "fitted at start-up on 28 examples" in note
    save_router(fitted, tmp_path / "router")
    loaded, note = build_router(parse_ecosystem({**data, "router": {"path": "router"}}, base_dir=tmp_path))
    assert loaded is not None and note.startswith("loaded from")
    texts = ["Where is my refund?", "Invoice 9 from Acme, total $5", "Who painted the Mona Lisa?"]
    assert [d.route for d in loaded.route_batch(texts)] == [d.route for d in fitted.route_batch(texts)]
    assert [d.route for d in fitted.route_batch(texts)][:2] == ["support", "invoices"]
