"""Aggregate throughput of 8 concurrent requests to the same specialist vs the same 8 served one by one.

Both through cadre's llama.cpp backend with one LoRA adapter over SmolLM2-135M Q4_1: concurrent requests for the
same adapter are decoded together (one ``llama_decode`` per step for all of them).

    .venv/bin/python benchmarks/runtime_batching.py [--threads 2] [--tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _runtime_common import QUESTIONS, cores, machine_note, median, write_random_lora


def raw_batch_scaling(path: str, threads: int, batch: int, steps: int = 24) -> float:
    """The peer ceiling: raw llama_decode steps of ``batch`` sequences vs 1 on this machine, aggregate tok/s ratio."""
    import statistics

    import llama_cpp as lc

    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(path.encode(), lc.llama_model_default_params())
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_seq_max, cp.kv_unified = 2048, 512, batch, True
    cp.n_threads = cp.n_threads_batch = threads
    ctx = lc.llama_init_from_model(model, cp)
    b = lc.llama_batch_init(512, 0, 1)
    rate = {}
    for width in (1, batch):
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        n = 0
        for seq in range(width):
            for j in range(16):  # a 16-token prompt per sequence
                b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = 100 + j, j, 1, 0
                b.seq_id[n][0] = seq
                n += 1
        b.n_tokens = n
        lc.llama_decode(ctx, b)
        times = []
        for step in range(steps):
            for seq in range(width):
                b.token[seq], b.pos[seq], b.n_seq_id[seq], b.logits[seq] = 200, 16 + step, 1, 1
                b.seq_id[seq][0] = seq
            b.n_tokens = width
            t0 = time.perf_counter()
            lc.llama_decode(ctx, b)
            times.append(time.perf_counter() - t0)
        rate[width] = width / statistics.median(times)
    lc.llama_batch_free(b)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return rate[batch] / rate[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import SamplingParams, load_backend
    from cadre.runtime.bundled import bundled_model_path

    base_path = bundled_model_path("smollm2-135m")
    adapter = write_random_lora(
        base_path, Path(tempfile.mkdtemp()) / "spec.gguf", rank=16, seed=0, scale=0.02
    )
    backend = load_backend(
        "smollm2-135m",
        adapters={"spec": adapter},
        n_threads=args.threads,
        n_ctx=1024,
        n_parallel=args.concurrency,
    )
    qs = (QUESTIONS * ((args.concurrency + 7) // 8))[: args.concurrency]
    p = SamplingParams(max_tokens=args.tokens)
    print(
        f"# {args.concurrency} requests to one specialist, {args.tokens} tokens each, {args.threads} threads; {machine_note()}"
    )

    def one(q: str) -> int:
        return backend.chat([{"role": "user", "content": q}], p, adapter="spec").usage.completion_tokens

    one(qs[0])  # warm-up
    seq_tps, conc_tps = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        n_seq = sum(one(q) for q in qs)
        seq_tps.append(n_seq / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            n_conc = sum(pool.map(one, qs))
        conc_tps.append(n_conc / (time.perf_counter() - t0))
    backend.close()
    raw_ratio = raw_batch_scaling(str(base_path), args.threads, args.concurrency)
    result = {
        "one_by_one_tokens_per_second": median(seq_tps),
        "concurrent_tokens_per_second": median(conc_tps),
        "ratio": median(conc_tps) / median(seq_tps),
        "runs": {"one_by_one": seq_tps, "concurrent": conc_tps},
        "raw_llama_decode_batch_scaling": raw_ratio,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"one by one : {result['one_by_one_tokens_per_second']:6.1f} tok/s aggregate (runs {', '.join(f'{x:.0f}' for x in seq_tps)})"
    )
    print(
        f"concurrent : {result['concurrent_tokens_per_second']:6.1f} tok/s aggregate (runs {', '.join(f'{x:.0f}' for x in conc_tps)})"
    )
    print(f"ratio concurrent / one by one = {result['ratio']:.2f}x  (target > 1)")
    print(
        f"peer ceiling on this machine now: raw llama_decode, {args.concurrency} sequences per step vs 1 "
        f"(bare base, decode only) = {raw_ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
