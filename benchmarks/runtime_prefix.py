"""Prompt-prefix sharing in cadre's llama.cpp backend: few-shot generalist requests with and without it.

Every request of a few-shot evaluation repeats the same system prompt and exemplars; with sharing, a request
admitted while another holds that prompt start takes its KV cells and prefills only its own question. For each
task (``cadre.synth`` data: the first ``--shots`` training records as user/assistant exemplars, then a test
record's question, greedy, the demo's ``max_tokens``), the same prompts run at ``--concurrency`` through two
engines over the generalist (Gemma-3-270M Q4_K_M, bundled), sharing on and off, alternating per repeat. The peer
is the engine without sharing (session 6's cadre): llama.cpp's server caches a slot's own previous prompt, not
another slot's.

Reported per task: median wall time off / on (the speedup), prompt tokens reused ÷ all, and how many answers are
identical (batching changes the order of float sums, which can flip a near-tie; see tests/runtime/test_prefix.py).

    .venv/bin/python benchmarks/runtime_prefix.py [--shots 3] [--prompts 16] [--concurrency 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from _runtime_common import DEMO_MAX_TOKENS, answer_all, cores, machine_note, median


def prompts(task: str, n: int, shots: int) -> list[list[dict[str, str]]]:
    from cadre.synth import generate, get_generator

    gen = get_generator(task)
    exemplars = list(generate(gen, split="train", n=shots, seed=0))
    tests = list(generate(gen, split="test", n=n, seed=0))
    system = [m for m in tests[0]["messages"] if m["role"] == "system"]
    turns = [m for r in exemplars for m in r["messages"] if m["role"] != "system"]
    return [system + turns + [m for m in r["messages"] if m["role"] == "user"] for r in tests]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--tasks", default="invoices,normalize,intents")
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import load_backend

    kw = {"n_threads": args.threads, "n_parallel": args.concurrency, "prompt_lookup": False}
    on = load_backend(args.model, **kw)
    off = load_backend(args.model, prefix_sharing=False, **kw)
    print(
        f"# prefix sharing, {args.model}, {args.shots}-shot, {args.prompts} prompts at concurrency "
        f"{args.concurrency}, {args.threads} threads; {machine_note()}"
    )
    result: dict[str, Any] = {}
    for task in args.tasks.split(","):
        msgs = prompts(task, args.prompts, args.shots)
        tokens = DEMO_MAX_TOKENS.get(task, 64)
        answer_all(on, msgs[:1], None, 4, 1)  # warm-up both
        answer_all(off, msgs[:1], None, 4, 1)
        walls: dict[str, list[float]] = {"off": [], "on": []}
        same = 0
        before = (on.prefix_stats.computed, on.prefix_stats.reused)
        for _ in range(args.repeats):
            t_off, plain = answer_all(off, msgs, None, tokens, args.concurrency)
            t_on, shared = answer_all(on, msgs, None, tokens, args.concurrency)
            walls["off"].append(t_off)
            walls["on"].append(t_on)
            same += sum(a == b for a, b in zip(plain, shared, strict=True))
        computed = on.prefix_stats.computed - before[0]
        reused = on.prefix_stats.reused - before[1]
        row = {
            "prompt_tokens_mean": round(sum(on.count_tokens(on.render_chat(m)) for m in msgs) / len(msgs)),
            "wall_s_off": round(median(walls["off"]), 2),
            "wall_s_on": round(median(walls["on"]), 2),
            "speedup": round(median(walls["off"]) / median(walls["on"]), 2),
            "reused_share": round(reused / max(computed + reused, 1), 3),
            "identical_answers": f"{same}/{len(msgs) * args.repeats}",
        }
        result[task] = row
        print(
            f"{task:10s} prompt ~{row['prompt_tokens_mean']} tokens: off {row['wall_s_off']:.2f} s, "
            f"on {row['wall_s_on']:.2f} s ({row['speedup']:.2f}x), {row['reused_share']:.0%} of prompt "
            f"tokens reused, identical answers {row['identical_answers']}"
        )
    on.close()
    off.close()
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
