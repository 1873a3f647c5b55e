"""Shared helpers for the runtime benchmarks (not a benchmark itself)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

from lora_files import write_random_lora

__all__ = ["DEMO_MAX_TOKENS", "answer_all", "cores", "median", "rss_bytes", "write_random_lora"]

DEMO_MAX_TOKENS = {"invoices": 96, "normalize": 24, "intents": 12}  # the demo's answer budgets per task

# A completion prompt the model continues for a long time (no early end-of-text), so every run decodes N tokens.
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
# Chat questions for the concurrent-stream benchmarks (open-ended: answers run to max_tokens).
QUESTIONS = [
    "Tell me about the ocean.",
    "Describe a busy city street.",
    "Write about a mountain hike.",
    "Explain how bread is made.",
    "Describe a thunderstorm.",
    "Tell a story about a cat.",
    "Describe a summer garden.",
    "Write about a train journey.",
]


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def cores() -> int:
    return len(os.sched_getaffinity(0))


def machine_note() -> str:
    load = os.getloadavg()[0]
    return f"{cores()} cores visible, load average {load:.1f} at start (shared machine: expect noise)"


def answer_all(
    backend: Any, msgs: list[Any], adapter: str | None, tokens: int, conc: int
) -> tuple[float, list[str]]:
    """Answer every chat in ``msgs`` greedily with ``conc`` in flight: (wall seconds, answers in order)."""
    from cadre.runtime import SamplingParams

    p = SamplingParams(max_tokens=tokens, stop=("\n\n",))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        texts = list(pool.map(lambda m: backend.chat(m, p, adapter=adapter).text, msgs))
    return time.perf_counter() - t0, texts
