"""The llama.cpp engine's scheduling policy: pure functions (fast), then a skewed load on the bundled model."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cadre.runtime import SamplingParams, load_backend
from cadre.runtime.scheduling import burst_steps, pick_admission, pick_group


@dataclass
class Req:
    group: Hashable
    waiting_since: float = 0.0


def test_admission_prefers_the_adapter_with_the_fewest_running_then_the_oldest() -> None:
    waiting = [Req("hot"), Req("hot"), Req("cold"), Req("cold")]
    assert pick_admission(waiting, {"hot": 3, "cold": 0}) == 2
    assert pick_admission(waiting, {"hot": 1, "cold": 1}) == 0  # a tie: arrival order
    assert pick_admission(waiting, {}) == 0


def test_the_group_that_waited_longest_goes_next() -> None:
    groups = {"a": [Req("a", 5.0), Req("a", 9.0)], "b": [Req("b", 7.0)], "c": [Req("c", 4.0)]}
    assert pick_group(groups) == "c"
    groups["c"][0].waiting_since = 10.0  # c was just served: now a's oldest member is the longest waiting
    assert pick_group(groups) == "a"


def test_bursts_only_when_switching_costs_more_than_a_step() -> None:
    assert burst_steps(0.0, 0.05) == 1
    assert burst_steps(0.01, 0.05) == 1
    assert burst_steps(0.05, 0.05) == 4  # a switch as dear as a step: capped at 4 steps
    assert burst_steps(0.025, 0.05) == 2
    assert burst_steps(1.0, 0.0) == 1


@pytest.mark.slow
def test_a_skewed_load_does_not_starve_the_rare_adapter(lora_pair: dict[str, Path]) -> None:
    """Two long requests for one adapter fill both slots and two more queue; a request for another adapter
    arriving after them is admitted at the first free slot (ahead of the queued hot ones: arrival order would
    put it last) and finishes while the hot adapter's second wave is still running."""
    b = load_backend(
        "smollm2-135m", adapters=dict(lora_pair), n_ctx=256, n_parallel=2, n_threads=1, prompt_lookup=False
    )
    long = SamplingParams(max_tokens=24)
    msgs = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    done: dict[str, float] = {}

    def hot(i: int) -> None:
        b.chat(msgs, long, adapter="alpha")
        done[f"hot{i}"] = time.perf_counter()

    try:
        threads = [threading.Thread(target=hot, args=(i,)) for i in range(4)]
        for t in threads[:2]:
            t.start()
        time.sleep(0.5)  # the first two hold every slot
        for t in threads[2:]:
            t.start()
        time.sleep(0.2)  # two more hot requests queue first
        c = b.chat(msgs, SamplingParams(max_tokens=4), adapter="beta")
        done["cold"] = time.perf_counter()
        for t in threads:
            t.join()
    finally:
        b.close()
    assert c.usage.completion_tokens > 0
    # The cold request jumped the queued hot ones: it finished before the last wave of hot requests did.
    assert all(done["cold"] < done[f"hot{i}"] for i in (2, 3))
