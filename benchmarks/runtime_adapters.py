"""Specialists over one base in cadre's llama.cpp backend: memory of 4 adapters, and the adapter tax.

- RSS: the process after loading the base, then after loading 4 LoRA adapters (rank 16 on all 7 linear modules of
  the 30 layers: cadre train's default shape), against the alternative of 4 merged copies of the base;
- adapter tax: single-stream decode speed of the bare base / with one adapter (same backend, interleaved runs),
  for the default shape and for a light one (rank 8 on q and v only).

    .venv/bin/python benchmarks/runtime_adapters.py [--threads 2] [--tokens 96] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _runtime_common import PROMPT, cores, machine_note, median, rss_bytes, write_random_lora

DEFAULT = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import SamplingParams, load_backend
    from cadre.runtime.bundled import bundled_model_path

    base_path = bundled_model_path("smollm2-135m")
    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    specs = {
        f"spec{i}": write_random_lora(base_path, tmp / f"spec{i}.gguf", rank=16, seed=i, scale=0.02)
        for i in range(4)
    }
    light = write_random_lora(
        base_path, tmp / "light.gguf", rank=8, targets=("attn_q", "attn_v"), seed=9, scale=0.02
    )
    print(f"# adapters over SmolLM2-135M Q4_1, {args.threads} threads; {machine_note()}")

    rss0 = rss_bytes()
    backend = load_backend("smollm2-135m", n_threads=args.threads, n_ctx=2048, n_parallel=8)
    p = SamplingParams(max_tokens=8)
    backend.complete(PROMPT, p)  # touch the weights so they count in RSS
    rss_base = rss_bytes()
    for name, path in specs.items():
        backend.load_adapter(name, path)
    for name in specs:
        backend.complete(PROMPT, p, adapter=name)
    rss_4 = rss_bytes()
    kv_bytes = backend.kv_cache_bytes  # type: ignore[attr-defined]
    backend.load_adapter("light", light)
    adapter_files = sum(f.stat().st_size for f in specs.values())
    base_cost = rss_base - rss0

    runs: dict[str, list[float]] = {
        "base": [],
        "default adapter (r16, 7 modules)": [],
        "light adapter (r8, q+v)": [],
    }
    names = {"base": None, "default adapter (r16, 7 modules)": "spec0", "light adapter (r8, q+v)": "light"}
    n = SamplingParams(max_tokens=args.tokens)
    for _ in range(args.repeats):
        for label, adapter in names.items():
            c = backend.complete(PROMPT, n, adapter=adapter)
            runs[label].append(c.tokens_per_second)
    backend.close()
    med = {k: median(v) for k, v in runs.items()}
    result = {
        "rss_before_model_bytes": rss0,
        "rss_base_bytes": rss_base,
        "rss_base_plus_4_adapters_bytes": rss_4,
        "adapter_files_bytes": adapter_files,
        "rss_added_by_4_adapters_bytes": rss_4 - rss_base,
        "kv_cache_bytes": kv_bytes,
        "base_file_bytes": base_path.stat().st_size,
        "rss_if_4_merged_copies_bytes": rss0 + 4 * base_cost,
        "median_tokens_per_second": med,
        "runs": runs,
        "adapter_tax_default": med["base"] / med["default adapter (r16, 7 modules)"],
        "adapter_tax_light": med["base"] / med["light adapter (r8, q+v)"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    mb = 1e6
    print(
        f"RSS: python+libs {rss0 / mb:.0f} MB; + base {rss_base / mb:.0f} MB; + 4 adapters {rss_4 / mb:.0f} MB"
    )
    print(
        f"  the base's share: GGUF file {base_path.stat().st_size / mb:.0f} MB, F16 KV cache {kv_bytes / mb:.0f} MB, "
        "the rest compute buffers and the llama.cpp runtime"
    )
    print(
        f"  4 adapters added {(rss_4 - rss_base) / mb:.0f} MB (their files: {adapter_files / mb:.0f} MB); "
        f"4 merged copies of the base would need ~{(rss0 + 4 * base_cost) / mb:.0f} MB"
    )
    for k, v in med.items():
        print(
            f"{k:>34}: {v:6.1f} tok/s (median of {args.repeats}; runs {', '.join(f'{x:.0f}' for x in runs[k])})"
        )
    print(
        f"adapter tax (base / adapter): default {result['adapter_tax_default']:.2f}x, light {result['adapter_tax_light']:.2f}x  (target <= 1.25x)"
    )


if __name__ == "__main__":
    main()
