"""Decode speed of SmolLM2-135M Q4_1 at one stream: cadre's llama.cpp backend vs raw llama-cpp-python.

Peers, same GGUF file, same prompt, same threads, same greedy decoding, interleaved in one run:
  - ``Llama.create_completion`` (llama-cpp-python's high-level API), streamed;
  - a minimal loop over the low-level ``llama_decode`` (the ceiling for any Python caller);
and the memory-bandwidth roofline of this machine from ``cadre.costmodel`` (``load_hardware("local")``).
Decode speed = (tokens - 1) / (time of last token - time of first token): prefill excluded.

    .venv/bin/python benchmarks/runtime_decode.py [--threads 2] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import time
from typing import Any

from _runtime_common import PROMPT, cores, machine_note, median


def bench_cadre(backend: Any, n: int) -> float:
    from cadre.runtime import SamplingParams

    c = backend.complete(PROMPT, SamplingParams(max_tokens=n, temperature=0.0))
    assert c.usage.completion_tokens == n, f"cadre stopped after {c.usage.completion_tokens} tokens"
    return c.tokens_per_second


def bench_llama(llm: Any, n: int) -> float:
    stamps = []
    for _ in llm.create_completion(PROMPT, max_tokens=n, temperature=0.0, stream=True):
        stamps.append(time.perf_counter())
    assert len(stamps) >= n - 1, f"Llama stopped after {len(stamps)} chunks"
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


class RawLoop:
    """Greedy decode with llama_decode on a one-token batch and a greedy sampler: no engine, no queue."""

    def __init__(self, path: str, threads: int) -> None:
        import llama_cpp as lc

        self.lc = lc
        lc.llama_backend_init()
        self.model = lc.llama_model_load_from_file(path.encode(), lc.llama_model_default_params())
        cp = lc.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_threads, cp.n_threads_batch, cp.no_perf = 2048, 512, threads, threads, True
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.sampler = lc.llama_sampler_init_greedy()
        data = PROMPT.encode()
        arr = (ctypes.c_int32 * 256)()
        self.prompt = list(arr[: lc.llama_tokenize(self.vocab, data, len(data), arr, 256, True, False)])

    def run(self, n: int) -> float:
        lc = self.lc
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        toks = (ctypes.c_int32 * len(self.prompt))(*self.prompt)
        lc.llama_decode(self.ctx, lc.llama_batch_get_one(toks, len(self.prompt)))
        one = (ctypes.c_int32 * 1)()
        stamps = []
        for _ in range(n):
            tok = lc.llama_sampler_sample(self.sampler, self.ctx, -1)
            stamps.append(time.perf_counter())
            one[0] = tok
            if lc.llama_decode(self.ctx, lc.llama_batch_get_one(one, 1)) != 0:
                break
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def roofline(path: str, context: int) -> dict[str, Any]:
    """tokens/s if every decode step only streamed its bytes at the memory bandwidth (cadre.costmodel).

    Two bandwidths: the ``local`` hardware entry (calibrated by ``cadre cost calibrate``, else the catalog
    default) and a single-thread STREAM-copy probe taken in this run (same machine state as the decode runs).
    """
    try:
        from cadre.costmodel import decode_step, load_hardware
        from cadre.costmodel.arch import arch_from_gguf
        from cadre.costmodel.calibration import measure_memory_bandwidth

        hw = load_hardware("local")
        calibrated = bool(hw.measured and hw.measured.memory_bandwidth_bytes_per_s)
        step = decode_step(arch_from_gguf(path), hw, batch=1, context=context, measured=calibrated)
        probe = measure_memory_bandwidth()
        return {
            "bytes_per_token": step.bytes_moved,
            "local_bandwidth_bytes_per_s": hw.bandwidth(measured=calibrated),
            "local_bandwidth_source": "cadre cost calibrate" if calibrated else "catalog default for 'local'",
            "local_tokens_per_second": step.tokens_per_second,
            "probe_bandwidth_bytes_per_s": probe,
            "probe_tokens_per_second": probe / step.bytes_moved,
        }
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=cores())
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from llama_cpp import Llama

    from cadre.runtime import load_backend
    from cadre.runtime.bundled import bundled_model_path

    path = str(bundled_model_path("smollm2-135m"))
    print(f"# decode, SmolLM2-135M Q4_1, {args.threads} threads, {args.tokens} tokens; {machine_note()}")
    backend = load_backend("smollm2-135m", n_threads=args.threads, n_ctx=2048)
    llm = Llama(path, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    raw = RawLoop(path, args.threads)
    runs: dict[str, list[float]] = {"cadre": [], "llama_cpp.Llama": [], "raw llama_decode": []}
    bench_cadre(backend, 8), bench_llama(llm, 8), raw.run(8)  # warm-up
    for _ in range(args.repeats):  # interleaved so drift in machine load hits every peer alike
        runs["cadre"].append(bench_cadre(backend, args.tokens))
        runs["llama_cpp.Llama"].append(bench_llama(llm, args.tokens))
        runs["raw llama_decode"].append(raw.run(args.tokens))
    backend.close()
    med = {k: median(v) for k, v in runs.items()}
    roof = roofline(path, context=len(raw.prompt) + args.tokens)
    result = {
        "threads": args.threads,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "median_tokens_per_second": med,
        "runs": runs,
        "ratio_cadre_vs_llama_cpp_Llama": med["cadre"] / med["llama_cpp.Llama"],
        "ratio_cadre_vs_raw_llama_decode": med["cadre"] / med["raw llama_decode"],
        "roofline": roof,
    }
    if "bytes_per_token" in roof:
        result["fraction_of_roofline_local"] = med["cadre"] / roof["local_tokens_per_second"]
        result["fraction_of_roofline_probe"] = med["cadre"] / roof["probe_tokens_per_second"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k, v in med.items():
        print(
            f"{k:>18}: {v:7.1f} tok/s (median of {args.repeats}; runs {', '.join(f'{x:.0f}' for x in runs[k])})"
        )
    print(f"cadre / llama_cpp.Llama  = {result['ratio_cadre_vs_llama_cpp_Llama']:.3f}  (target >= 0.90)")
    print(f"cadre / raw llama_decode = {result['ratio_cadre_vs_raw_llama_decode']:.3f}")
    if "bytes_per_token" in roof:
        print(
            f"roofline at {roof['bytes_per_token'] / 1e6:.0f} MB/token: 'local' hardware "
            f"({roof['local_bandwidth_source']}, {roof['local_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s) "
            f"{roof['local_tokens_per_second']:.0f} tok/s -> cadre at {result['fraction_of_roofline_local']:.1%}; "
            f"STREAM-copy probe now ({roof['probe_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s) "
            f"{roof['probe_tokens_per_second']:.0f} tok/s -> cadre at {result['fraction_of_roofline_probe']:.1%}"
        )
    else:
        print(f"roofline: unavailable ({roof['error']})")


if __name__ == "__main__":
    main()
