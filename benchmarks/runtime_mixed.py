"""Mixed-specialist traffic in cadre's llama.cpp backend: 8 adapters x 2 streams vs the same 16 streams on one.

Closed loop: 16 client threads each send ``--requests`` chat requests one after another (greedy, ``--tokens``
tokens each, plain decoding). In the *same* case all 16 name one adapter; in the *mixed* case stream i names
adapter i mod 8. The two cases alternate ``--repeats`` times in one process (the peer runs next to it).

Reported: aggregate completion tokens/s of each case, the mixing tax (same ÷ mixed), and per adapter the p99 time
to first token (over its streams' requests in all repeats) with the spread (largest p99 ÷ smallest).

    .venv/bin/python benchmarks/runtime_mixed.py [--threads 2] [--tokens 24] [--requests 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _runtime_common import QUESTIONS, cores, machine_note, median, write_random_lora

N_ADAPTERS = 8
N_STREAMS = 16


def run_case(backend: Any, adapters: list[str], tokens: int, requests: int) -> dict[str, Any]:
    """Every stream i sends ``requests`` requests to ``adapters[i]`` back to back; returns tok/s and TTFTs."""
    from cadre.runtime import SamplingParams

    p = SamplingParams(max_tokens=tokens)
    ttft: list[list[float]] = [[] for _ in adapters]
    produced = [0] * len(adapters)

    def stream(i: int) -> None:
        for r in range(requests):
            q = QUESTIONS[(i + r) % len(QUESTIONS)]
            t0 = time.perf_counter()
            first = None
            n = 0
            for chunk in backend.stream_chat([{"role": "user", "content": q}], p, adapter=adapters[i]):
                if first is None:
                    first = time.perf_counter() - t0
                if chunk.usage is not None:
                    n = chunk.usage.completion_tokens
            ttft[i].append(first if first is not None else float("nan"))
            produced[i] += n

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(adapters))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"tokens_per_second": sum(produced) / wall, "ttft": ttft, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import load_backend
    from cadre.runtime.bundled import bundled_model_path

    base_path = bundled_model_path("smollm2-135m")
    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    adapters = {
        f"spec{i}": write_random_lora(base_path, tmp / f"spec{i}.gguf", rank=16, seed=i, scale=0.02)
        for i in range(N_ADAPTERS)
    }
    backend = load_backend(
        "smollm2-135m",
        adapters=adapters,
        n_threads=args.threads,
        n_ctx=256,
        n_parallel=N_STREAMS,
        kv_size=N_STREAMS * 256,
        prompt_lookup=False,
    )
    print(
        f"# {N_STREAMS} streams x {args.requests} requests x {args.tokens} tokens, {args.threads} threads; "
        f"{machine_note()}"
    )
    same = ["spec0"] * N_STREAMS
    mixed = [f"spec{i % N_ADAPTERS}" for i in range(N_STREAMS)]
    run_case(backend, mixed[:N_ADAPTERS], 4, 1)  # warm-up: touch every adapter once
    cases: dict[str, list[dict[str, Any]]] = {"same": [], "mixed": []}
    for _ in range(args.repeats):
        cases["same"].append(run_case(backend, same, args.tokens, args.requests))
        cases["mixed"].append(run_case(backend, mixed, args.tokens, args.requests))
    backend.close()

    tps = {k: [r["tokens_per_second"] for r in v] for k, v in cases.items()}
    # The tax of a repeat is same / mixed within it (the peers ran back to back), then the median over repeats.
    tax = median([s / m for s, m in zip(tps["same"], tps["mixed"], strict=True)])
    per_adapter: dict[str, list[float]] = {}
    for run in cases["mixed"]:
        for i, times in enumerate(run["ttft"]):
            per_adapter.setdefault(mixed[i], []).extend(times)
    p99 = {a: float(np.percentile(v, 99)) for a, v in sorted(per_adapter.items())}
    same_ttft = [t for run in cases["same"] for times in run["ttft"] for t in times]
    result = {
        "tokens_per_second": {k: median(v) for k, v in tps.items()},
        "runs": tps,
        "mixing_tax": tax,
        "p99_ttft_s_by_adapter": p99,
        "p99_ttft_spread": max(p99.values()) / min(p99.values()),
        "p99_ttft_s_same": float(np.percentile(same_ttft, 99)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k, v in tps.items():
        print(f"{k:>6}: {median(v):6.1f} tok/s aggregate (runs {', '.join(f'{x:.1f}' for x in v)})")
    print(f"mixing tax (same / mixed, median of repeats) = {tax:.2f}x  (target <= 1.5x)")
    print("p99 TTFT by adapter (mixed): " + ", ".join(f"{a} {t * 1000:.0f} ms" for a, t in p99.items()))
    print(
        f"spread (max / min p99) = {result['p99_ttft_spread']:.2f}x (target <= 2x); "
        f"same-adapter p99 TTFT {result['p99_ttft_s_same'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
