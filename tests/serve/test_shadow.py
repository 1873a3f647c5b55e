"""Shadow mode and feedback in the gateway: a real server on the bundled SmolLM2 driven by the official openai
client; the generalist answers, the shadowed specialist's answer lands in the capture store beside it, the
report reads the pairs, and a label posted to /v1/feedback becomes the accuracy reference."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from cadre.evaluate import exact_agreement, shadow_report
from cadre.runtime.protocol import Completion, Usage
from cadre.serve.protocol import CadreInfo
from cadre.serve.shadow import ShadowRunner
from cadre.serve.telemetry import Metrics
from cadre.traffic import open_store

from .conftest import LiveServer, small_spec

SUPPORT = [f"my order {i} has not arrived, where is my parcel?" for i in range(8)]
INVOICES = [f"extract the total and number of invoice INV-{i:03d} as JSON" for i in range(8)]


def _settled(live: LiveServer, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while live.gateway.shadows.in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live.gateway.capture.recorder.flush()


def test_the_generalist_answers_and_the_shadow_is_logged_beside_it(tmp_path: Path) -> None:
    db = tmp_path / "traffic.db"
    spec = small_spec(
        specialists=[
            {"name": "support", "base": "smollm2-135m", "examples": SUPPORT, "decoding": {"max_tokens": 4}},
            {"name": "invoices", "base": "smollm2-135m", "examples": INVOICES, "decoding": {"max_tokens": 4}},
        ],
        router={"build": {"strategy": "centroid"}, "threshold": 0.0},
        capture={
            "store": str(db),
            "models": ["support"],  # the generalist's answers are captured anyway when a shadow needs them
            "prices": {"generalist": {"output_per_mtok": 1000.0}, "invoices": {"output_per_mtok": 10.0}},
            "shadow": [
                {"specialist": "invoices", "scope": "routed"},
                {"specialist": "support", "scope": "generalist", "sample_rate": 0.0},
            ],
        },
    )
    with LiveServer(spec, api_keys=["test-key-123"], shadow_agreement=exact_agreement) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="test-key-123", max_retries=0, timeout=120)
        routed = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": INVOICES[2]}], max_tokens=4
        )
        cadre: Any = routed.model_extra["cadre"]
        assert routed.model == "generalist" and "invoices runs in shadow" in cadre["reason"]
        pieces, stream_id, finish = [], "", None
        for chunk in client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": INVOICES[4]}], max_tokens=3, stream=True
        ):
            stream_id = chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        named = client.chat.completions.create(  # named: the router is not asked, no routed shadow
            model="invoices", messages=[{"role": "user", "content": INVOICES[3]}], max_tokens=2
        )
        assert named.model == "invoices"
        _settled(live)
        posted = httpx.post(
            f"{live.url}/v1/feedback",
            json={"response_id": routed.id, "label": routed.choices[0].message.content, "score": 1},
            headers={"Authorization": "Bearer test-key-123"},
            timeout=60,
        )
        assert posted.status_code == 202, posted.text
        unauth = httpx.post(
            f"{live.url}/v1/feedback", json={"response_id": routed.id, "score": 1}, timeout=60
        )
        empty = httpx.post(
            f"{live.url}/v1/feedback",
            json={"response_id": routed.id},
            headers={"Authorization": "Bearer test-key-123"},
            timeout=60,
        )
        assert (unauth.status_code, empty.status_code) == (401, 400)
        assert live.gateway.capture.recorder.flush()
        metrics = httpx.get(f"{live.url}/metrics", timeout=60).text
    assert 'cadre_shadow_requests_total{outcome="answered",specialist="invoices"} 2.0' in metrics
    assert 'cadre_shadow_agreement_total{specialist="invoices"}' in metrics
    assert "support" not in metrics.split("cadre_shadow_requests_total")[1].split("\n")[0]  # sampled out
    with open_store(db) as store:
        pairs = store.shadow_pairs()
        captured = [r.request_id for r in store.records()]
    assert [r.request_id for r, _ in pairs] == [routed.id, stream_id]
    assert captured == [routed.id, stream_id, named.id] or captured == [routed.id, stream_id]
    (first, shadow1), (streamed, _) = pairs
    assert first.model == "generalist" and first.response == routed.choices[0].message.content
    assert streamed.response == "".join(pieces) and streamed.finish_reason == finish == "length"
    assert shadow1.specialist == "invoices" and shadow1.error is None and shadow1.response
    assert shadow1.cost == pytest.approx(shadow1.completion_tokens * 10.0 / 1e6)
    report = shadow_report(db, "invoices", similarity=False)
    assert report.source == "shadow" and report.n == 2 and report.reference == "generalist"
    exact = next(a for a in report.agreement if a.measure == "exact_match")
    expected = sum(exact_agreement(s.response, r.response) for r, s in pairs) / 2
    assert exact.specialist == pytest.approx(expected) and exact.low <= exact.specialist <= exact.high
    assert report.labelled == 1 and report.user_score == 1.0 and report.user_scored == 1
    label = next(a for a in report.accuracy if a.measure == "label accuracy")
    assert label.generalist == 1.0 and label.n == 1  # the label was the generalist's own answer


def test_feedback_needs_capture(tmp_path: Path) -> None:
    with LiveServer(small_spec()) as live:
        r = httpx.post(
            f"{live.url}/v1/feedback", json={"response_id": "chatcmpl-x", "label": "a"}, timeout=60
        )
    assert r.status_code == 409 and "capture is off" in r.json()["error"]["message"]


def test_a_busy_specialist_drops_the_shadow_and_never_waits() -> None:
    spec = small_spec(
        capture={
            "store": "unused.db",
            "shadow": [{"specialist": "support", "scope": "generalist", "max_in_flight": 1}],
        }
    )

    class Snap:
        def __init__(self) -> None:
            self.spec = spec
            gen: Any = type("T", (), {"name": "generalist", "kind": "generalist"})()
            sup: Any = type("T", (), {"name": "support", "kind": "specialist"})()
            self.targets = {"generalist": gen, "support": sup}
            self.generalist = gen

    class Rec:
        def __init__(self) -> None:
            self.offered: list[Any] = []

        def offer(self, item: Any) -> bool:
            self.offered.append(item)
            return True

        def cost(self, *_: Any) -> float:
            return 0.0

    async def scenario() -> tuple[Metrics, Rec, float]:
        metrics, rec, snap = Metrics(), Rec(), Snap()
        runner = ShadowRunner(metrics, agreement=exact_agreement)
        release = asyncio.Event()

        async def generate(_target: Any) -> Completion:
            await release.wait()
            return Completion(text="same", usage=Usage())

        plan = runner.plan(snap, snap.generalist, CadreInfo(route="generalist", requested="generalist"))  # type: ignore[arg-type]
        assert [t.name for t in plan.shadows] == ["support"]
        t0 = time.perf_counter()
        for rid in ("a", "b", "c"):
            runner.launch(
                plan.shadows, snap=snap, request_id=rid, answer="same", recorder=rec, generate=generate
            )  # type: ignore[arg-type]
        launched = time.perf_counter() - t0
        release.set()
        while runner.in_flight():
            await asyncio.sleep(0.01)
        await runner.close()
        return metrics, rec, launched

    metrics, rec, launched = asyncio.run(scenario())
    text = metrics.render().decode()
    assert launched < 0.05
    assert 'cadre_shadow_requests_total{outcome="dropped",specialist="support"} 2.0' in text
    assert 'cadre_shadow_requests_total{outcome="answered",specialist="support"} 1.0' in text
    assert 'cadre_shadow_agreement_total{specialist="support"} 1.0' in text
    assert [r.request_id for r in rec.offered] == ["a"]
