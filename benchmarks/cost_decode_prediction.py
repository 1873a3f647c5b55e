"""Predicted vs measured decode speed on this machine: the roofline (with bandwidth measured in the same run)
against llama.cpp running the bundled SmolLM2-135M Q4_1 GGUF, at 1 and 2 threads, median of 3 runs each.

Run: .venv/bin/python benchmarks/cost_decode_prediction.py
"""

from __future__ import annotations

import statistics

from cadre.costmodel import decode_step, load_hardware, load_model
from cadre.costmodel.calibration import (
    measure_decode,
    measure_matmul_flops,
    measure_memory_bandwidth,
    smollm2_gguf_path,
)
from cadre.costmodel.hardware import PeakFlops


def main() -> None:
    path = smollm2_gguf_path()
    bw = statistics.median(measure_memory_bandwidth() for _ in range(3))
    fl = statistics.median(measure_matmul_flops() for _ in range(3))
    hw = load_hardware("local").model_copy(
        update={"memory_bandwidth_bytes_per_s": bw, "peak_flops": {"fp16": PeakFlops(dense=fl)}}
    )
    model = load_model(str(path))
    print(f"measured: copy bandwidth {bw / 1e9:.2f} GB/s, fp32 matmul {fl / 1e9:.1f} GFLOP/s")
    for threads in (1, 2):
        runs = [measure_decode(path, n_tokens=48, n_threads=threads) for _ in range(3)]
        tps = statistics.median(r[0] for r in runs)
        pred = decode_step(model, hw, batch=1, context=runs[0][1]).tokens_per_second
        print(
            f"threads={threads}: llama.cpp measured {tps:.1f} tok/s (runs {[round(r[0], 1) for r in runs]}), "
            f"roofline predicted {pred:.1f} tok/s, measured/predicted = {tps / pred:.2f}"
        )


if __name__ == "__main__":
    main()
