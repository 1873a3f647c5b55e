"""The runner's records, failures, resume and summaries (rule-based backend; the real model is in test_e2e)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from eval_helpers import KeywordBackend

from cadre.errors import ConfigError
from cadre.evaluate import (
    BackendSystem,
    RoutedSystem,
    SystemSpec,
    load_task,
    parse_system,
    run_eval,
    summarize,
    write_report,
)
from cadre.evaluate.records import PROBE_FILE, TIMING_FILE, read_jsonl_lines, read_run_records
from cadre.evaluate.summary import compare_run
from cadre.route.protocol import RouteDecision
from cadre.runtime.protocol import ChatMessage


def _system(name: str, backend: KeywordBackend, **spec: object) -> BackendSystem:
    return BackendSystem(SystemSpec(name=name, model="keywords", **spec), backend)  # type: ignore[arg-type]


def test_records_and_summary(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    good, flaky = KeywordBackend(), KeywordBackend(fail_on=["refund", "money back"])
    out = tmp_path / "run"
    summary = run_eval(
        task, [_system("good", good), _system("flaky", flaky)], out, progress=False, concurrency=1
    )
    recs = read_run_records(out)
    assert len(recs) == 20 and good.calls == 10 and flaky.calls == 10
    first = next(r for r in recs if r["system"] == "good" and r["item_id"] == "a1")
    assert (
        first["prediction"] == "order_status"
        and first["correct"] is True
        and first["raw"] == "Intent: order_status"
    )
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] == 2 and first["latency_s"] >= 0
    assert first["ttft_s"] is not None and first["error"] is None
    g, f = summary.systems["good"], summary.systems["flaky"]
    assert g.metric == pytest.approx(0.9) and g.failures == 0 and g.n == 10  # a9 has no keyword
    # the flaky system failed on the two refund items; the run went on and counts them as wrong
    assert f.failures == 2 and f.failure_rate == pytest.approx(0.2) and f.metric == pytest.approx(0.7)
    assert "upstream error 503" in f.errors[0]
    failed = [r for r in recs if r["system"] == "flaky" and r["error"]]
    assert {r["item_id"] for r in failed} == {"a3", "a7"} and all(r["correct"] is False for r in failed)
    (comp,) = summary.comparisons
    assert (comp.a, comp.b, comp.mcnemar.b, comp.mcnemar.c) == ("flaky", "good", 0, 2)  # type: ignore[union-attr]
    assert comp.difference == pytest.approx(-0.2)
    assert summary.complete and summary.baseline == "good"
    assert json.loads((out / "summary.json").read_text())["systems"]["flaky"]["failures"] == 2
    assert summarize(out).systems["good"].metric == g.metric  # re-summarising needs no generation


def test_a_system_that_cannot_load_is_recorded_and_others_run(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    broken = parse_system("broken=/nonexistent/model.gguf")
    summary = run_eval(task, [_system("good", KeywordBackend()), broken], tmp_path / "run", progress=False)
    b = summary.systems["broken"]
    assert b.failures == 10 and b.failure_rate == 1.0 and "did not load" in b.errors[0]
    assert "does not exist" in b.errors[0]
    assert summary.systems["good"].metric == pytest.approx(0.9)


def test_interrupted_run_resumes_where_it_stopped(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_eval(
            task, [_system("good", KeywordBackend(interrupt_after=4))], out, progress=False, concurrency=1
        )
    assert len(read_run_records(out)) == 4
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and partial["systems"]["good"]["n"] == 4
    with (out / "items.jsonl").open("a") as fh:  # a write cut off mid-line by the interruption
        fh.write('{"system": "good", "item_id": "a5", "perturb')
    assert len(read_run_records(out)) == 4
    fresh = KeywordBackend()
    summary = run_eval(task, [_system("good", fresh)], out, progress=False, concurrency=1)
    assert fresh.calls == 6  # only the items not yet answered
    recs = read_run_records(out)
    assert len(recs) == 10 and len({r["item_id"] for r in recs}) == 10
    assert summary.complete and summary.systems["good"].metric == pytest.approx(0.9)
    again = KeywordBackend()
    run_eval(task, [_system("good", again)], out, progress=False, concurrency=1)
    assert again.calls == 0


def test_failed_items_are_retried_on_resume(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    out = tmp_path / "run"
    run_eval(task, [_system("s", KeywordBackend(fail_on=["refund"]))], out, progress=False, concurrency=1)
    healthy = KeywordBackend()
    summary = run_eval(task, [_system("s", healthy)], out, progress=False, concurrency=1)
    assert healthy.calls == 1 and summary.systems["s"].failures == 0  # "a3" only ("a7" said "money back")
    assert len(read_run_records(out)) == 11  # the failure stays in the log; the latest record counts


def test_resume_refuses_a_different_task_or_system(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    out = tmp_path / "run"
    run_eval(task, [_system("s", KeywordBackend())], out, progress=False, limit=3, concurrency=1)
    with pytest.raises(ConfigError, match="different task or settings"):
        run_eval(
            task,
            [_system("s", KeywordBackend())],
            out,
            progress=False,
            limit=3,
            temperature=0.5,
            concurrency=1,
        )
    # a larger --limit extends the run: only the new items are asked
    more = KeywordBackend()
    assert (
        run_eval(task, [_system("s", more)], out, progress=False, limit=5, concurrency=1).n_items == 5
        and more.calls == 2
    )
    with pytest.raises(ConfigError, match="defined differently"):
        run_eval(task, [_system("s", KeywordBackend(), shots=0)], out, progress=False, limit=3, concurrency=1)
    # adding a system to an existing run is fine: only the new one runs
    extra = KeywordBackend()
    summary = run_eval(task, [_system("t", extra)], out, progress=False, limit=5, concurrency=1)
    assert extra.calls == 5 and set(summary.systems) == {"s", "t"}


def test_bad_arguments(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    s = _system("s", KeywordBackend())
    with pytest.raises(ConfigError, match="temperature 0 gives identical runs"):
        run_eval(task, [s], tmp_path / "r", repeats=3, progress=False)
    with pytest.raises(ConfigError, match="no systems"):
        run_eval(task, [], tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="baseline 'x'"):
        run_eval(task, [s], tmp_path / "r", baseline="x", progress=False)


def test_perturbations_robustness_and_compare(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    out = tmp_path / "run"
    summary = run_eval(
        task,
        [_system("a", KeywordBackend()), _system("b", KeywordBackend(fail_on=["cancel"]))],
        out,
        perturbations=["casing", "noop", "typos"],
        progress=False,
    )
    rob = {(r.system, r.perturbation): r for r in summary.robustness}
    casing = rob[("a", "casing")]
    # keyword lookup is case-insensitive: the same answers, the same accuracy
    assert (
        casing.n == 10 and casing.consistency == 1.0 and casing.delta == 0.0 and casing.flipped_to_wrong == 0
    )
    typos = rob[("a", "typos")]
    assert typos.n == 10 and 0 <= typos.consistency <= 1
    assert typos.flipped_to_wrong == round((typos.original - typos.perturbed) * 10) + typos.flipped_to_right
    recs = read_run_records(out)
    assert len(recs) == 2 * 10 * 4
    comp = compare_run(out, "b", "a", resamples=2000)
    assert comp.a_value == pytest.approx(0.7) and comp.difference == pytest.approx(-0.2)


def test_repeats_report_spread(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    summary = run_eval(
        task, [_system("s", KeywordBackend())], tmp_path / "r", repeats=3, temperature=0.8, progress=False
    )
    s = summary.systems["s"]
    assert s.repeats is not None and s.repeats.values == (0.9, 0.9, 0.9) and s.repeats.std == 0.0
    assert len(read_run_records(tmp_path / "r")) == 30 and summary.temperature == 0.8


class KeywordRouter:
    """A Router over two routes: cancellations to one specialist, everything else to the generalist."""

    def __init__(self) -> None:
        self.routes = ["cancel"]

    def route(self, text: str) -> RouteDecision:
        if "cancel" in text.lower():
            return RouteDecision(route="cancel", score=0.9, reason="keyword", seconds=0.001)
        return RouteDecision(route="generalist", score=0.1, reason="no keyword", seconds=0.001)

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]:
        return [self.route(t) for t in texts]

    def route_chat(self, messages: Sequence[ChatMessage], *, current: str | None = None) -> RouteDecision:
        return self.route(messages[-1]["content"])


def test_routed_ecosystem_records_routes(intents_task: Path, tmp_path: Path) -> None:
    task = load_task(intents_task)
    spec_sys = _system("spec", KeywordBackend(), price_per_hour=0.05)
    gen_sys = _system("gen", KeywordBackend(fail_on=["cancel"]), price_per_hour=0.5)
    eco_spec = SystemSpec(
        name="eco", kind="routed", router="(in memory)", routes={"cancel": "spec"}, generalist="gen"
    )
    eco = RoutedSystem(eco_spec, KeywordRouter(), {"cancel": spec_sys}, gen_sys)
    summary = run_eval(task, [gen_sys, spec_sys, eco], tmp_path / "r", progress=False, concurrency=1)
    e = summary.systems["eco"]
    assert e.routes == {"cancel": 2, "generalist": 8}
    assert e.metric == pytest.approx(0.9) and summary.systems["gen"].metric == pytest.approx(0.7)
    eco_recs = [r for r in read_run_records(tmp_path / "r") if r["system"] == "eco"]
    assert all(r["latency_s"] >= 0.001 for r in eco_recs)
    # each request is costed by the system it went to: its price per hour x its machine time per request
    # (busy wall time / requests in this run), plus the router's time
    assert e.cost.method == "mixed" and e.cost.per_request is not None
    timing = read_jsonl_lines(tmp_path / "r" / TIMING_FILE)
    per_req = {t["system"]: t["wall_s"] / t["requests"] for t in timing}
    price = {"cancel": 0.05, "generalist": 0.5}
    target = {"cancel": "spec", "generalist": "gen"}
    costs = [price[r["route"]] * (per_req[target[r["route"]]] + r["route_s"]) / 3600 for r in eco_recs]
    assert e.cost.per_request == pytest.approx(sum(costs) / len(costs))
    assert all(r["route_s"] > 0 for r in eco_recs) and {t["requests"] for t in timing} == {8, 10}


def test_parse_system_strings() -> None:
    s = parse_system("spec=smollm2-135m,adapter=out/a.gguf,shots=0,mode=complete")
    assert (s.name, s.kind, s.model, s.adapter, s.shots, s.mode) == (
        "spec",
        "model",
        "smollm2-135m",
        "out/a.gguf",
        0,
        "complete",
    )
    o = parse_system("openai:gpt-4o-mini@https://api.openai.com/v1")
    assert (o.name, o.kind, o.model) == (
        "gpt-4o-mini",
        "openai",
        "openai:gpt-4o-mini@https://api.openai.com/v1",
    )
    r = parse_system("eco=routed:runs/router,routes=intents:spec;invoices:inv,generalist=gpt")
    assert (
        r.routes == {"intents": "spec", "invoices": "inv"}
        and r.generalist == "gpt"
        and r.router == "runs/router"
    )
    assert parse_system("/models/my-model.Q4.gguf").name == "my-model.Q4"
    with pytest.raises(ConfigError, match="unknown key"):
        parse_system("x=smollm2-135m,shotz=3")
    with pytest.raises(ConfigError, match="routes=ROUTE:SYSTEM"):
        parse_system("e=routed:r,routes=oops")
    with pytest.raises(ConfigError, match="needs routes"):
        parse_system("e=routed:r")


def test_routed_system_from_a_fitted_router_directory(intents_task: Path, tmp_path: Path) -> None:
    """`routed:DIR` loads a real cadre.route router (bundled MiniLM embeddings) in front of other systems."""
    from cadre.route import fit_router, save_router

    examples = [
        *[(t, "orders") for t in ("Where is my order?", "My parcel has not arrived", "Track my package please",
                                  "When will my order be delivered?", "The delivery is late", "Order status?")],
        *[(t, "accounts") for t in ("I can't log in", "Reset my password", "My account is locked",
                                    "Login fails with my password", "Cannot sign in to my account", "Change my password")],
    ]  # fmt: skip
    router_dir = tmp_path / "router"
    save_router(fit_router(examples, strategy="centroid", min_examples_per_route=5), router_dir)
    task = load_task(intents_task)
    orders, accounts = _system("orders-kw", KeywordBackend()), _system("accounts-kw", KeywordBackend())
    eco = parse_system(
        f"eco=routed:{router_dir},routes=orders:orders-kw;accounts:accounts-kw,generalist=orders-kw"
    )
    summary = run_eval(task, [orders, accounts, eco], tmp_path / "run", progress=False)
    routes = summary.systems["eco"].routes
    assert sum(routes.values()) == 10 and routes.get("accounts", 0) >= 2  # a4 and a8 are about passwords
    recs = {r["item_id"]: r for r in read_run_records(tmp_path / "run") if r["system"] == "eco"}
    assert recs["a4"]["route"] == "accounts" and recs["a1"]["route"] == "orders"
    with pytest.raises(ConfigError, match="not systems of this run"):
        run_eval(
            task,
            [orders, parse_system(f"e2=routed:{router_dir},generalist=nobody")],
            tmp_path / "r2",
            progress=False,
        )


def test_openai_compatible_endpoint_over_http(intents_task: Path, tmp_path: Path) -> None:
    from eval_helpers import OpenAIStub, write_jsonl

    stub = OpenAIStub()
    try:
        rows = [json.loads(line) for line in (tmp_path / "intents.jsonl").read_text().splitlines()]
        rows[1]["text"] = "REJECTME: cancel order #555"
        write_jsonl(tmp_path / "intents.jsonl", rows)
        task = load_task(intents_task)
        hosted = parse_system(f"hosted=openai:stub-model@{stub.base_url},price=gpt-4o-mini")
        summary = run_eval(task, [hosted], tmp_path / "run", progress=False, concurrency=1)
    finally:
        stub.close()
    h = summary.systems["hosted"]
    assert stub.requests == 10 and h.failures == 1 and h.metric == pytest.approx(0.8)
    assert "RequestRejectedError" in h.errors[0] and "content rejected" in h.errors[0]
    recs = [r for r in read_run_records(tmp_path / "run") if not r["error"]]
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] >= 1 for r in recs)
    # tokens x list price (gpt-4o-mini: $0.15 / $0.60 per million)
    expected = sum(r["prompt_tokens"] * 0.15 + r["completion_tokens"] * 0.60 for r in recs) / 1e6 / len(recs)
    assert h.cost.method == "price:gpt-4o-mini" and h.cost.per_request == pytest.approx(expected)


def test_complete_mode_renders_the_conversation_as_text() -> None:
    from cadre.evaluate.systems import EvalRequest, messages_to_prompt
    from cadre.runtime.protocol import SamplingParams

    msgs: list[ChatMessage] = [
        {"role": "system", "content": "Label the intent."},
        {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": "order_status"},
        {"role": "user", "content": "Cancel it please"},
    ]
    assert (
        messages_to_prompt(msgs)
        == "Label the intent.\n\nWhere is my parcel? order_status\n\nCancel it please"
    )
    backend = KeywordBackend()
    system = _system("base", backend, mode="complete")
    gen = system.generate(
        EvalRequest(text="Cancel it please", build=lambda s: msgs), SamplingParams(max_tokens=4)
    )
    # the backend saw the whole conversation as one prompt (the exemplar's "Where is" matched first)
    assert gen.text == "Intent: order_status" and gen.prompt_tokens == len(messages_to_prompt(msgs).split())


def test_concurrent_requests_give_the_same_records(intents_task: Path, tmp_path: Path) -> None:
    from eval_helpers import OpenAIStub

    task = load_task(intents_task)
    stub = OpenAIStub()
    try:
        spec = parse_system(
            f"hosted=openai:m@{stub.base_url},price_per_hour=3.6"
        )  # a local server: hardware cost
        seq = run_eval(
            task, [spec], tmp_path / "seq", progress=False, perturbations=["casing"], concurrency=1
        )
        par = run_eval(
            task,
            [spec],
            tmp_path / "par",
            progress=False,
            perturbations=["casing"],
            concurrency=4,
            latency_probe=0,
        )
    finally:
        stub.close()
    assert stub.requests == 40
    key = lambda r: (r["item_id"], r["perturbation"])  # noqa: E731
    a = sorted(read_run_records(tmp_path / "seq"), key=key)
    b = sorted(read_run_records(tmp_path / "par"), key=key)
    assert [(r["item_id"], r["prediction"]) for r in a] == [(r["item_id"], r["prediction"]) for r in b]
    assert {r["concurrency"] for r in b} == {4} and par.systems["hosted"].metric == seq.systems[
        "hosted"
    ].metric
    # each request pays the machine's busy time divided by the requests served in it
    (timing,) = read_jsonl_lines(tmp_path / "par" / TIMING_FILE)
    assert timing["requests"] == 20 and timing["concurrency"] == 4
    assert par.systems["hosted"].cost.per_request == pytest.approx(3.6 * timing["wall_s"] / 20 / 3600)
    assert par.systems["hosted"].latency_solo is None  # no probe asked for
    with pytest.raises(ConfigError, match="concurrency"):
        run_eval(task, [spec], tmp_path / "x", concurrency=0, progress=False)
    with pytest.raises(ConfigError, match="latency_probe"):
        run_eval(task, [spec], tmp_path / "x", latency_probe=-1, progress=False, concurrency=1)


class _SlowKeywords(KeywordBackend):
    """The keyword backend taking ``delay`` seconds per request, like a model (threads overlap the waits)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def stream_chat(self, messages, params, *, adapter=None):  # type: ignore[no-untyped-def]
        time.sleep(self.delay)
        yield from super().stream_chat(messages, params, adapter=adapter)


def test_concurrency_keeps_scores_costs_from_throughput_and_reports_both_latencies(
    intents_task: Path, tmp_path: Path
) -> None:
    task = load_task(intents_task)
    backend = _SlowKeywords(0.05)
    system = _system("k", backend, price_per_hour=3.6)
    seq = run_eval(task, [system], tmp_path / "seq", progress=False, concurrency=1)
    par = run_eval(task, [system], tmp_path / "par", progress=False, concurrency=5, latency_probe=3)
    assert backend.calls == 10 + 10 + 3  # the probe answered the first 3 items again, one at a time
    pred = lambda d: sorted((r["item_id"], r["prediction"]) for r in read_run_records(d))  # noqa: E731
    assert (
        pred(tmp_path / "seq") == pred(tmp_path / "par")
        and par.systems["k"].metric == seq.systems["k"].metric
    )

    (t_seq,) = read_jsonl_lines(tmp_path / "seq" / TIMING_FILE)
    (t_par,) = read_jsonl_lines(tmp_path / "par" / TIMING_FILE)
    assert (t_par["requests"], t_par["concurrency"], t_seq["concurrency"]) == (10, 5, 1)
    assert t_par["wall_s"] < 0.6 * t_seq["wall_s"]  # 5 in flight: two rounds of 50 ms instead of ten
    s, s1 = par.systems["k"], seq.systems["k"]
    assert s.cost.per_request == pytest.approx(3.6 * t_par["wall_s"] / 10 / 3600)
    assert s.cost.per_request < 0.6 * s1.cost.per_request  # type: ignore[operator]
    assert s.latency.concurrency == 5 and s.latency.n == 10
    assert s.latency_solo is not None and s.latency_solo.concurrency == 1 and s.latency_solo.n == 3
    probe = read_jsonl_lines(tmp_path / "par" / PROBE_FILE)
    assert [r["item_id"] for r in probe] == ["a1", "a2", "a3"] and {r["concurrency"] for r in probe} == {1}
    assert s1.latency_solo == s1.latency and not read_jsonl_lines(tmp_path / "seq" / PROBE_FILE)

    run_eval(task, [system], tmp_path / "par", progress=False, concurrency=5, latency_probe=3)
    assert backend.calls == 23  # resumed: nothing left to answer, nothing to probe again
    md = write_report(tmp_path / "par").markdown.read_text()  # type: ignore[union-attr]
    assert "p50 one at a time" in md and "Concurrency" in md
    assert "busy wall time" in md and "requests/s at concurrency 5" in md
