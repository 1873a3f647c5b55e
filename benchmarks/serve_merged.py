"""Merged vs unmerged specialist: single-stream decode speed of SmolLM2-135M + one LoRA adapter served unmerged
(base Q4_1 + adapter) and from the merged GGUF ``cadre serve`` writes (adapted tensors Q8_0, others Q4_1;
``--quant Q8_0``: every tensor Q8_0).

Both backends live in one process; each repeat decodes the base, the unmerged adapter and the merged model back
to back; speed ratios are taken within a repeat, medians over repeats. Greedy, prompt lookup off.

    .venv/bin/python benchmarks/serve_merged.py [--threads 1] [--tokens 64] [--repeats 7] [--rank 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _runtime_common import PROMPT, machine_note, median, write_random_lora

SHAPES = {
    "all7": ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"),
    "qv": ("attn_q", "attn_v"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", choices=sorted(SHAPES), default="all7")
    ap.add_argument("--quant", default=None, help="convert every 2-D tensor of the merged file (e.g. Q8_0)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.runtime import SamplingParams, load_backend
    from cadre.runtime.bundled import bundled_model_path
    from cadre.runtime.gguf_merge import merge_gguf_adapter

    base_path = bundled_model_path("smollm2-135m")
    tmp = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    print(
        f"# merged vs unmerged, SmolLM2-135M Q4_1, r{args.rank} {args.targets}, {args.threads} thread(s); "
        f"merged file: {args.quant or 'adapted tensors Q8_0, others as the base'}; {machine_note()}"
    )
    adapter = write_random_lora(
        base_path, tmp / "a.gguf", rank=args.rank, targets=SHAPES[args.targets], seed=1, scale=0.03
    )
    t0 = time.perf_counter()
    merged = merge_gguf_adapter(base_path, adapter, tmp / "merged.gguf", quant=args.quant)
    merge_s = time.perf_counter() - t0
    kw = {"n_threads": args.threads, "n_ctx": 1024, "n_parallel": 1, "prompt_lookup": False}
    plain = load_backend("smollm2-135m", **kw)
    plain.load_adapter("a", adapter)  # type: ignore[attr-defined]
    folded = load_backend(str(merged), **kw)
    p = SamplingParams(max_tokens=args.tokens)
    for b in (plain, folded):
        b.complete(PROMPT, SamplingParams(max_tokens=8))  # warm-up
    runs: dict[str, list[float]] = {"base": [], "unmerged": [], "merged": []}
    same = 0
    for _ in range(args.repeats):
        runs["base"].append(plain.complete(PROMPT, p).tokens_per_second)
        un = plain.complete(PROMPT, p, adapter="a")
        me = folded.complete(PROMPT, p)
        runs["unmerged"].append(un.tokens_per_second)
        runs["merged"].append(me.tokens_per_second)
        same += un.text == me.text
    ratio = [m / u for m, u in zip(runs["merged"], runs["unmerged"], strict=True)]
    tax = [b / u for b, u in zip(runs["base"], runs["unmerged"], strict=True)]
    merged_vs_base = [m / b for m, b in zip(runs["merged"], runs["base"], strict=True)]
    result = {
        "merge_seconds": round(merge_s, 2),
        "merged_file_bytes": merged.stat().st_size,
        "base_file_bytes": base_path.stat().st_size,
        "median_tokens_per_second": {k: round(median(v), 2) for k, v in runs.items()},
        "merged_over_unmerged": round(median(ratio), 3),
        "adapter_tax_unmerged": round(median(tax), 3),
        "merged_over_base": round(median(merged_vs_base), 3),
        "same_text": f"{same}/{args.repeats}",
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k, v in result["median_tokens_per_second"].items():  # type: ignore[union-attr]
        print(f"  {k:>9}: {v:6.1f} tok/s (median of {args.repeats})")
    print(
        f"  merged ÷ unmerged: {result['merged_over_unmerged']}x; unmerged tax {result['adapter_tax_unmerged']}x; "
        f"merged ÷ base {result['merged_over_base']}x; same text {result['same_text']}; "
        f"merge took {merge_s:.1f} s, file {merged.stat().st_size / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
