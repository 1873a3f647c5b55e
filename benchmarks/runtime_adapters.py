"""Specialists over one base in cadre's llama.cpp backend: memory of 4 adapters, and the adapter tax.

- RSS: the process after loading the base, then after loading 4 LoRA adapters (rank 16 on all 7 linear modules of
  the 30 layers: cadre train's default shape), against the alternative of 4 merged copies of the base;
- adapter tax: single-stream decode speed of the bare base / with one adapter (same backend, interleaved runs:
  each repeat decodes the base and then every adapter shape), for rank {8, 16} x target modules {q+v, all 7
  linear projections}. Untrained (random) adapters: the speed depends only on the shapes.

    .venv/bin/python benchmarks/runtime_adapters.py [--threads 2] [--tokens 96] [--repeats 5] [--tax-only]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _runtime_common import PROMPT, cores, machine_note, median, rss_bytes, write_random_lora

ALL7 = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
QV = ("attn_q", "attn_v")
SHAPES = {"r8-qv": (8, QV), "r16-qv": (16, QV), "r8-all7": (8, ALL7), "r16-all7": (16, ALL7)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--batch",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 8],
        help="concurrent streams, e.g. 1,8",
    )
    ap.add_argument("--tax-only", action="store_true", help="skip the memory measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import SamplingParams, load_backend
    from cadre.runtime.bundled import bundled_model_path

    base_path = bundled_model_path("smollm2-135m")
    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    print(f"# adapters over SmolLM2-135M Q4_1, {args.threads} threads; {machine_note()}")
    rss0 = rss_bytes()
    # Plain decoding only: prompt lookup would change the tokens per step and blur the per-token tax.
    backend = load_backend(
        "smollm2-135m", n_threads=args.threads, n_ctx=2048, n_parallel=8, prompt_lookup=False
    )
    result: dict[str, object] = {}
    if not args.tax_only:
        result.update(memory_of_four(backend, base_path, tmp, rss0))
    for i, (label, (rank, targets)) in enumerate(SHAPES.items()):
        path = write_random_lora(
            base_path, tmp / f"tax{i}.gguf", rank=rank, targets=targets, seed=i, scale=0.02
        )
        backend.load_adapter(label, path)
    backend.complete(PROMPT, SamplingParams(max_tokens=8))  # warm-up
    tables = {}
    for width in args.batch:
        runs = tax_runs(backend, width, args.tokens, args.repeats)
        med = {k: median(v) for k, v in runs.items()}
        # The tax of a repeat is base / adapter within it (the peers ran back to back); its median is less
        # sensitive to the machine's load drifting between repeats than a ratio of medians.
        tax = {
            label: median([b / a for b, a in zip(runs["base"], runs[label], strict=True)]) for label in SHAPES
        }
        tables[width] = {"median_tokens_per_second": med, "runs": runs, "adapter_tax": tax}
        if not args.json:
            print(f"{width} stream(s), {args.tokens} tokens each:")
            for k, v in med.items():
                print(
                    f"  {k:>9}: {v:6.1f} tok/s aggregate (median of {args.repeats}; "
                    f"runs {', '.join(f'{x:.0f}' for x in runs[k])})"
                    + (f"  tax {tax[k]:.2f}x" if k in tax else "")
                )
    backend.close()
    result["by_streams"] = tables
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("adapter tax = base tok/s / adapter tok/s in the same repeat, median over repeats")


def tax_runs(backend: Any, width: int, tokens: int, repeats: int) -> dict[str, list[float]]:
    """Aggregate decode tok/s of ``width`` concurrent streams on the base and on each adapter, interleaved."""
    from cadre.runtime import ChatRequest, SamplingParams

    runs: dict[str, list[float]] = {"base": [], **{label: [] for label in SHAPES}}
    p = SamplingParams(max_tokens=tokens)
    for _ in range(repeats):
        for label in runs:
            adapter = None if label == "base" else label
            if width == 1:
                runs[label].append(backend.complete(PROMPT, p, adapter=adapter).tokens_per_second)
                continue
            reqs = [
                ChatRequest(
                    messages=[{"role": "user", "content": f"{PROMPT} ({i})"}], params=p, adapter=adapter
                )
                for i in range(width)
            ]
            t0 = time.perf_counter()
            done = backend.batch_chat(reqs)
            runs[label].append(sum(c.usage.completion_tokens for c in done) / (time.perf_counter() - t0))
    return runs


def memory_of_four(backend: object, base_path: Path, tmp: Path, rss0: int) -> dict[str, object]:
    """RSS before the model, with the base, and with 4 default-shape adapters (r16, all 7 modules)."""
    from cadre.runtime import SamplingParams

    specs = {
        f"spec{i}": write_random_lora(base_path, tmp / f"spec{i}.gguf", rank=16, seed=i, scale=0.02)
        for i in range(4)
    }
    b: Any = backend
    p = SamplingParams(max_tokens=8)
    b.complete(PROMPT, p)  # touch the weights so they count in RSS
    rss_base = rss_bytes()
    for name, path in specs.items():
        b.load_adapter(name, path)
    for name in specs:
        b.complete(PROMPT, p, adapter=name)
    rss_4 = rss_bytes()
    for name in specs:
        b.remove_adapter(name)
    adapter_files = sum(f.stat().st_size for f in specs.values())
    mb = 1e6
    print(
        f"RSS: python+libs {rss0 / mb:.0f} MB; + base {rss_base / mb:.0f} MB; "
        f"+ 4 adapters (r16, all 7) {rss_4 / mb:.0f} MB"
    )
    print(
        f"  4 adapters added {(rss_4 - rss_base) / mb:.0f} MB (their files: {adapter_files / mb:.0f} MB); "
        f"the base GGUF is {base_path.stat().st_size / mb:.0f} MB, its F16 KV cache {b.kv_cache_bytes / mb:.0f} MB"
    )
    return {
        "rss_before_model_bytes": rss0,
        "rss_base_bytes": rss_base,
        "rss_if_4_merged_copies_bytes": rss0 + 4 * (rss_base - rss0),
        "rss_base_plus_4_adapters_bytes": rss_4,
        "adapter_files_bytes": adapter_files,
        "rss_added_by_4_adapters_bytes": rss_4 - rss_base,
        "kv_cache_bytes": b.kv_cache_bytes,
        "base_file_bytes": base_path.stat().st_size,
    }


if __name__ == "__main__":
    main()
