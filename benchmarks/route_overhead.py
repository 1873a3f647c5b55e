"""Routing overhead on one CPU core: per-request latency (embedding included), batch throughput, vs a peer.

    .venv/bin/python benchmarks/route_overhead.py [--requests 300] [--repeats 3] [--peer auto|semantic-router|knn]

Pins the process to one core and torch to one thread, fits a router on generated multi-domain data
(``cadre.synth``: three specialist tasks + out-of-scope requests), then routes each test request on its own and
records wall-clock and process CPU time (CPU time is what the core spent; on a shared machine wall-clock also counts
waiting for the core). Each figure is the median over ``--repeats`` runs. The peer routes the same requests with
the same embedder in the same process (semantic-router's IndexedRouter if it imports, else a plain kNN router).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHORT_WORDS = 30


def _pin_one_core() -> int | None:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return core
    except (AttributeError, OSError):
        return None


def _latencies(fn: Any, texts: list[Any]) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for t in texts:
        w0, c0 = time.perf_counter(), time.process_time()
        fn(t)
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return wall, cpu


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", default="auto", choices=["auto", "semantic-router", "knn"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    core = _pin_one_core()
    import torch

    torch.set_num_threads(1)
    from cadre.route import fit_router, load_examples
    from cadre.route.encoders import get_route_embedder
    from cadre.synth import write_router_data
    from route_peers import make_peer  # type: ignore[import-not-found]

    tmp = Path(tempfile.mkdtemp(prefix="route-bench-"))
    per = {"train": 80, "validation": 10, "test": 100}
    files = write_router_data(["intents", "invoices", "normalize"], tmp, n_per_task=per, n_oos=per, seed=1)
    train, test = load_examples(files["train"]), load_examples(files["test"])
    val = load_examples(files["validation"])
    texts = [ex.text for ex in test][: args.requests]
    embedder = get_route_embedder(precision=args.precision)
    embedder.encode(texts[:8])  # warm up
    router = fit_router(train, embedder=embedder, embedding_precision=args.precision)
    peer = make_peer(args.peer, embedder, [ex.text for ex in train], [ex.route for ex in train], val)
    for t in texts[:10]:  # warm-up both paths
        router.route(t)
        peer.route(t)

    # Latency depends on length: chat-style requests vs whole documents (the invoice task routes full invoices).
    short = [t for t in texts if len(t.split()) <= SHORT_WORDS]
    runs: dict[str, list[dict[str, float]]] = {
        "cadre": [],
        "cadre_short": [],
        "peer": [],
        "embed_only": [],
        "decide_only": [],
    }
    x_all = embedder.encode(texts)
    for _ in range(args.repeats):
        for name, fn, items in (
            ("cadre", router.route, texts),
            ("cadre_short", router.route, short),
            ("peer", peer.route, texts),
            ("embed_only", lambda t: embedder.encode([t]), texts),
        ):
            wall, cpu = _latencies(fn, items)
            runs[name].append(
                {
                    "p50_ms": _pct(wall, 50),
                    "p99_ms": _pct(wall, 99),
                    "cpu_p50_ms": _pct(cpu, 50),
                    "cpu_p99_ms": _pct(cpu, 99),
                }
            )
        rows = [x_all[i : i + 1] for i in range(len(texts))]
        wall, cpu = _latencies(router.decide, rows)  # type: ignore[attr-defined]
        runs["decide_only"].append(
            {
                "p50_ms": _pct(wall, 50),
                "p99_ms": _pct(wall, 99),
                "cpu_p50_ms": _pct(cpu, 50),
                "cpu_p99_ms": _pct(cpu, 99),
            }
        )
    throughput = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), 64):
            router.route_batch(texts[i : i + 64])
        throughput.append(len(texts) / (time.perf_counter() - t0))

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    result = {
        "core": core,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "requests": len(texts),
        "repeats": args.repeats,
        "strategy": router.kind,  # type: ignore[attr-defined]
        "precision": args.precision,
        "peer": peer.name,
        "short_requests": len(short),
        "short_words_max": SHORT_WORDS,
        "cadre": {k: med("cadre", k) for k in runs["cadre"][0]},
        "cadre_short": {k: med("cadre_short", k) for k in runs["cadre_short"][0]},
        "peer_latency": {k: med("peer", k) for k in runs["peer"][0]},
        "embed_only": {k: med("embed_only", k) for k in runs["embed_only"][0]},
        "decide_only": {k: med("decide_only", k) for k in runs["decide_only"][0]},
        "batch_per_s": statistics.median(throughput),
    }
    result["ratio_p99_peer_over_cadre"] = result["peer_latency"]["p99_ms"] / result["cadre"]["p99_ms"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"routing overhead, one core (core {core}, torch threads 1, embeddings {args.precision}), "
        f"{len(texts)} requests x {args.repeats} runs"
    )
    print(
        f"machine load average {result['load_average']} (shared machine: wall-clock includes waiting for the core)"
    )
    print(f"{'':34s} {'p50 ms':>8s} {'p99 ms':>8s} {'cpu p50':>8s} {'cpu p99':>8s}")
    for label, key in (
        (f"cadre route ({router.kind})", "cadre"),  # type: ignore[attr-defined]
        (f"  short (<= {SHORT_WORDS} words, n={len(short)})", "cadre_short"),
        (f"peer: {peer.name}"[:34], "peer_latency"),
        ("  of which: embedding", "embed_only"),
        ("  of which: decision", "decide_only"),
    ):
        r = result[key]
        print(
            f"{label:34s} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['cpu_p50_ms']:8.2f} {r['cpu_p99_ms']:8.2f}"
        )
    print(f"batch throughput (batches of 64): {result['batch_per_s']:.0f} requests/s")
    print(f"peer p99 / cadre p99 = {result['ratio_p99_peer_over_cadre']:.2f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
