"""The demo's evaluation: task specs for the generated data, the systems under test, and the runs.

Per task, one ``cadre.evaluate`` run compares three systems on the same test items, with paired statistics:

- ``generalist``: the largest bundled model, few-shot (exemplars from the training split, chosen as `DemoConfig.few_shot_selection` says);
- ``specialist``: SmolLM2-135M with the task's LoRA adapter, zero-shot;
- ``ecosystem``: the router in front of all specialists and the generalist (what ``cadre serve`` does with
  ``model="auto"``), so routing mistakes cost it points.

A second, smaller run per task adds the robustness battery. Answers are greedy (temperature 0), so the same
prompt to the same system gives the same answer: :class:`CachedSystem` reuses a generation the demo already
measured (its real latency and token counts), which is why the ecosystem and the robustness runs are cheap.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any, Literal

from cadre.evaluate import EvalRequest, EvalSystem, Generation, SystemSpec, TaskSpec
from cadre.runtime import SamplingParams
from cadre.synth import get_generator

__all__ = ["CachedSystem", "generation_settings", "task_spec"]

# max_tokens per task: a label, a JSON object, a short canonical string.
_GENERATION = {
    "intents": {"max_tokens": 12, "stop": ["\n"]},
    "invoices": {"max_tokens": 96, "stop": ["\n\n"]},
    "normalize": {"max_tokens": 16, "stop": ["\n"]},
    "composed": {"max_tokens": 128, "stop": ["\n\n"]},
}


def generation_settings(task: str) -> dict[str, Any]:
    """Decoding settings used for ``task`` in evaluation and in the served ecosystem."""
    return dict(_GENERATION.get(task, {"max_tokens": 64, "stop": []}))


def task_spec(
    task: str,
    data_dir: Path,
    *,
    shots: int,
    split: str = "test",
    selection: Literal["fixed", "random", "nearest"] = "fixed",
) -> TaskSpec:
    """The ``cadre.evaluate`` task spec for a generated task (its data files under ``data_dir/task``)."""
    gen = get_generator(task)
    folder = data_dir / task
    extract: dict[str, Any]
    metric: Any
    if gen.kind == "classification":
        target, extract, metric = "label", {"kind": "label", "labels": list(gen.labels or ())}, "accuracy"
    elif gen.kind == "extraction":
        target, extract = "answer", {"kind": "json"}
        metric = {"name": "json_field_match", "abs_tol": 0.005}
    else:
        target, extract, metric = "answer", {"kind": "text"}, "exact_match"
    data = {
        "name": f"demo-{task}",
        "description": gen.description,
        "data": str(folder / f"{split}.jsonl"),
        "target_field": target,
        "input_field": "text",
        "prompt": {
            "system": gen.system_prompt,
            "template": "{text}",
            "few_shot": {"k": shots, "selection": selection, "source": str(folder / "train.jsonl")},
        },
        "extract": extract,
        "metric": metric,
        "generation": {**generation_settings(task), "temperature": 0.0},
    }
    return TaskSpec.model_validate(data)


class CachedSystem:
    """Wraps an :class:`EvalSystem`; a request whose messages and decoding were already answered is answered
    from memory with the originally measured generation (a copy marked ``reused``: callers may adjust it). A
    ``fresh`` request (the runner's one-at-a-time latency probe) is generated again and not cached."""

    def __init__(self, inner: EvalSystem, spec: SystemSpec | None = None) -> None:
        self.inner = inner
        self.spec = spec or inner.spec
        self.name = self.spec.name
        self._cache: dict[str, Generation] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def _key(self, request: EvalRequest, params: SamplingParams) -> str:
        messages = request.build(self.spec)
        return json.dumps([messages, dataclasses.asdict(params)], sort_keys=True, default=str)

    def generate(self, request: EvalRequest, params: SamplingParams) -> Generation:
        if request.fresh:
            return self.inner.generate(request, params)
        key = self._key(request, params)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            self.hits += 1
            return dataclasses.replace(hit, reused=True)
        gen = self.inner.generate(request, params)
        with self._lock:
            self._cache[key] = dataclasses.replace(gen)
        return gen

    def close(self) -> None:
        self.inner.close()
