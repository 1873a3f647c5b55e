"""Pipeline orchestration overhead per step (model stub), and fan-out overlap on the real runtime.

    .venv/bin/python benchmarks/pipeline_overhead.py [--runs 300] [--repeats 5] [--real] [--tokens 24] [--json]

1. **Overhead per step** (target ≤ 1 ms median beyond the model calls). A model stub answers at once, so a run's
   time is the executor's own work: templates, conditions, parsing, scheduling, the trace. Two pipelines: a chain
   of 4 steps (call → call parse json → tool → call) and a fan-out (3 calls at once + a join). The peer is the
   same model calls made directly in a Python loop, with the same messages: overhead per step = (pipeline run −
   direct calls) / steps. Median over ``--repeats`` rounds of ``--runs`` runs each.
2. **Fan-out overlap** (``--real``; target: wall time of a fan-out of 3 ≤ 0.6 × the sum of its steps). The same 3
   calls on the bundled SmolLM2-135M through ``LocalModels`` (llama.cpp, continuous batching): once as a fan-out,
   once forced into a chain with ``after:``. Ratio = fan-out wall / chain wall (the chain's wall is the sum of
   its steps). Median over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from cadre.ecosystem import LocalModels, ModelReply, ModelRequest, PipelineRunner, parse_ecosystem
from cadre.runtime.protocol import Completion, Usage


class Stub:
    """A model that answers at once (JSON when asked for JSON)."""

    def call(self, request: ModelRequest) -> ModelReply:
        text = '{"amount": "12.5", "date": "2024-03-05"}' if request.want_json else "refund"
        return ModelReply([Completion(text=text, usage=Usage(10, 2))] * request.n, request.model)


CHAIN = {
    "steps": [
        {"id": "a", "kind": "call", "model": "m", "prompt": "{input.text}"},
        {
            "id": "b",
            "kind": "call",
            "model": "m",
            "prompt": "{a}: {input.text}",
            "parse": "json",
            "json_schema": {
                "type": "object",
                "properties": {"amount": {"type": "string"}, "date": {"type": "string"}},
            },
        },
        {"id": "c", "kind": "tool", "tool": "date", "args": {"date": "{b.date}", "add_days": 30}},
        {"id": "d", "kind": "call", "model": "m", "prompt": "{a} {b.amount} {c}", "when": "a == 'refund'"},
    ],
}


def fan_out(prompt: str, tokens: int, *, chain: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(3):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "kind": "call",
            "model": "m",
            "prompt": f"{prompt} {{input.text}} ({i})",
            "max_tokens": tokens,
        }
        if chain and i:
            step["after"] = [f"s{i - 1}"]
        steps.append(step)
    return {"steps": steps, "output": {"a": "{s0}", "b": "{s1}", "c": "{s2}"}}


def _eco(pipelines: dict[str, Any]) -> Any:
    return parse_ecosystem(
        {"specialists": [{"name": "m"}], "server": {"fallback": "error"}, "pipelines": pipelines}
    )


def _direct(models: Stub, n_calls: int, text: str) -> None:
    from cadre.runtime.protocol import SamplingParams

    for i in range(n_calls):
        models.call(
            ModelRequest("m", [{"role": "user", "content": f"{text} {i}"}], SamplingParams(max_tokens=128))
        )


def stub_overhead(runs: int, repeats: int) -> dict[str, Any]:
    spec = _eco({"chain": CHAIN, "fan": fan_out("Say", 8, chain=False)})
    runner = PipelineRunner(spec.pipelines, Stub())
    text = "I was charged twice for invoice INV-7: $12.50 on 5 March 2024"
    out: dict[str, Any] = {}
    for name, steps, calls in (("chain", 4, 3), ("fan", 3, 3)):
        per_step = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(runs):
                runner.run(name, text)
            pipe = (time.perf_counter() - t0) / runs
            t0 = time.perf_counter()
            for _ in range(runs):
                _direct(Stub(), calls, text)
            direct = (time.perf_counter() - t0) / runs
            per_step.append((pipe - direct) / steps * 1000)
        out[name] = {
            "steps": steps,
            "overhead_ms_per_step_median": round(statistics.median(per_step), 4),
            "rounds_ms": [round(x, 4) for x in per_step],
        }
    runner.close()
    return out


def real_overlap(repeats: int, tokens: int, threads: int) -> dict[str, Any]:
    prompt = "Write a long story about a fisherman."
    spec = _eco({"fan": fan_out(prompt, tokens, chain=False), "chain": fan_out(prompt, tokens, chain=True)})
    models = LocalModels(spec, backend_options={"n_threads": threads})
    runner = PipelineRunner(spec.pipelines, models)
    runner.run("chain", "warm up")  # loads the model
    from cadre.runtime.protocol import ChatRequest, SamplingParams

    backend = next(iter(models._backends.values()))
    params = SamplingParams(max_tokens=tokens)
    reqs = [
        ChatRequest(messages=[{"role": "user", "content": f"{prompt} ({i})"}], params=params)
        for i in range(3)
    ]
    ratios, fan_walls, chain_walls, tokens_out, peer = [], [], [], [], []
    for i in range(repeats):
        fan = runner.run("fan", f"round {i}")
        chain = runner.run("chain", f"round {i}")
        fan_walls.append(fan.latency_s)
        chain_walls.append(chain.latency_s)
        ratios.append(fan.latency_s / chain.latency_s)
        tokens_out.append(fan.completion_tokens)
        # the peer: the runtime itself, the same 3 requests as one batch vs one after another
        t0 = time.perf_counter()
        backend.batch_chat(reqs)
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in reqs:
            backend.chat(r.messages, r.params)
        peer.append(batched / (time.perf_counter() - t0))
    runner.close()
    models.close()
    return {
        "tokens_per_step": tokens,
        "threads": threads,
        "fan_out_wall_s_median": round(statistics.median(fan_walls), 3),
        "chain_wall_s_median": round(statistics.median(chain_walls), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "completion_tokens_per_fan_out": tokens_out,
        "runtime_batch_ratio_median": round(statistics.median(peer), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--real", action="store_true", help="also measure fan-out overlap on the bundled model")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument(
        "--threads", type=int, default=1, help="llama.cpp threads (1 is often faster on a loaded box)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result: dict[str, Any] = {"load_average_at_start": round(os.getloadavg()[0], 2)}
    result["stub"] = stub_overhead(args.runs, args.repeats)
    if args.real:
        result["real"] = real_overlap(args.repeats, args.tokens, args.threads)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"load average at start: {result['load_average_at_start']}")
    for name, r in result["stub"].items():
        print(
            f"stub {name} ({r['steps']} steps): {r['overhead_ms_per_step_median']:.3f} ms/step beyond the calls"
        )
    if "real" in result:
        r = result["real"]
        print(
            f"real fan-out of 3 x {r['tokens_per_step']} tokens: {r['fan_out_wall_s_median']} s vs chain "
            f"{r['chain_wall_s_median']} s: ratio {r['ratio_median']} (target <= 0.6); the runtime's own "
            f"batch_chat of the 3 vs one by one: {r['runtime_batch_ratio_median']}"
        )


if __name__ == "__main__":
    main()
