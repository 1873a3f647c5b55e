"""Prompt-lookup decoding in cadre's llama.cpp backend: speedup and acceptance per task, output unchanged.

For each task (``cadre.synth`` test prompts: system prompt + user message, greedy, the demo's ``max_tokens``),
the same prompts are answered with prompt lookup on and off, alternating per prompt, in one process. The model
is SmolLM2-135M Q4_1, bare or with the task's trained adapter (``--specialists DIR`` holding ``<task>.gguf``, e.g.
a ``cadre demo`` output's ``specialists/``): lookup only pays when the answer copies its input, which a trained
extractor does and the bare base only partly does.

Reported per task: wall time of all prompts off / on (the speedup), completion tokens, tokens accepted ÷ drafted
(the acceptance rate), tokens per verification step, and whether every answer was identical.

    .venv/bin/python benchmarks/runtime_lookup.py [--specialists DIR] [--prompts 8] [--repeats 3] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _runtime_common import DEMO_MAX_TOKENS, answer_all, cores, machine_note, median


def prompts(task: str, n: int) -> list[list[dict[str, str]]]:
    from cadre.synth import generate, get_generator

    recs = generate(get_generator(task), split="test", n=n, seed=0)
    return [[m for m in r["messages"] if m["role"] != "assistant"] for r in recs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specialists", type=Path, help="folder with <task>.gguf adapters (else the bare base)")
    ap.add_argument("--tasks", default="invoices,normalize,intents")
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import load_backend

    tasks = args.tasks.split(",")
    adapters = {}
    if args.specialists:
        adapters = {
            t: args.specialists / f"{t}.gguf" for t in tasks if (args.specialists / f"{t}.gguf").exists()
        }
    kw = {"n_threads": args.threads, "n_ctx": 1024, "n_parallel": max(args.concurrency, 1)}
    on = load_backend("smollm2-135m", adapters=adapters or None, **kw)
    off = load_backend("smollm2-135m", adapters=adapters or None, prompt_lookup=False, **kw)
    print(
        f"# prompt lookup, SmolLM2-135M Q4_1{' + trained adapters' if adapters else ' (bare)'}, "
        f"{args.threads} threads, concurrency {args.concurrency}; {machine_note()}"
    )
    result: dict[str, Any] = {}
    for task in tasks:
        msgs = prompts(task, args.prompts)
        adapter = task if task in adapters else None
        tokens = DEMO_MAX_TOKENS.get(task, 64)
        answer_all(on, msgs[:1], adapter, 4, 1)  # warm-up both
        answer_all(off, msgs[:1], adapter, 4, 1)
        t_on: list[float] = []
        t_off: list[float] = []
        same = True
        before = (on.lookup_stats.drafts, on.lookup_stats.drafted, on.lookup_stats.accepted)  # type: ignore[attr-defined]
        n_tokens = 0
        for _ in range(args.repeats):
            dt, plain = answer_all(off, msgs, adapter, tokens, args.concurrency)
            t_off.append(dt)
            dt, fast = answer_all(on, msgs, adapter, tokens, args.concurrency)
            t_on.append(dt)
            same = same and plain == fast
            n_tokens = sum(on.count_tokens(t) for t in fast)  # type: ignore[attr-defined]
        st = on.lookup_stats  # type: ignore[attr-defined]
        drafts, drafted, accepted = st.drafts - before[0], st.drafted - before[1], st.accepted - before[2]
        speedup = median([a / b for a, b in zip(t_off, t_on, strict=True)])
        result[task] = {
            "adapter": adapter,
            "seconds_off": median(t_off),
            "seconds_on": median(t_on),
            "speedup": speedup,
            "completion_tokens": n_tokens,
            "drafted": drafted,
            "accepted": accepted,
            "acceptance": accepted / drafted if drafted else 0.0,
            "accepted_per_draft": accepted / drafts if drafts else 0.0,
            "identical_output": same,
        }
        if not args.json:
            r = result[task]
            print(
                f"{task:>10}: off {r['seconds_off']:.2f} s, on {r['seconds_on']:.2f} s -> {speedup:.2f}x; "
                f"{n_tokens} tokens; acceptance {r['acceptance']:.0%} ({accepted}/{drafted}), "
                f"{r['accepted_per_draft']:.1f} tokens accepted per draft; identical output: {same}"
            )
    on.close()
    off.close()
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
