"""The generator protocol, seeded split assignment, and the record formats every task shares.

A generator draws *fields* (every random choice: slot values, template id, noise seed) and renders them; the
user text and the gold answer are pure functions of the fields. That is what lets evaluation re-sample numbers
or names in a record and recompute its answer (the GSM-Symbolic idea), and what makes generation reproducible.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from typing import Any, Literal, Protocol, runtime_checkable

from cadre.errors import ConfigError, DataError

__all__ = [
    "SPLITS",
    "SPLIT_BUCKETS",
    "Record",
    "TaskGenerator",
    "TaskKind",
    "assistant_content",
    "generate",
    "make_record",
    "perturb_record",
    "router_view",
    "split_of",
]

TaskKind = Literal["classification", "extraction", "normalization", "out_of_scope"]
Record = dict[str, Any]

SPLITS = ("train", "validation", "test")
# Each distinct user text belongs to exactly one split, decided by a hash of its normalized text (buckets of
# 100): splits are disjoint by construction and each split's content does not depend on the other splits' sizes.
SPLIT_BUCKETS: dict[str, range] = {"train": range(0, 70), "validation": range(70, 80), "test": range(80, 100)}

# Give up after this many draws in a row without a new text for the split: the template space is exhausted.
_MAX_STALE_DRAWS = 5000


@runtime_checkable
class TaskGenerator(Protocol):
    """One synthetic task: draws fields, renders the user message, computes the gold answer from the fields."""

    name: str
    kind: TaskKind
    description: str
    system_prompt: str
    metric: (
        str  # the evaluation metric that fits: "accuracy" | "json_field_match" | "exact_match" | "routing"
    )
    labels: tuple[str, ...] | None  # classification label set, else None
    resample_kinds: tuple[str, ...]  # what `resample` can change while the answer stays recomputable

    def sample_fields(self, rng: random.Random) -> dict[str, Any]: ...

    def render(self, fields: dict[str, Any]) -> str: ...

    def answer(self, fields: dict[str, Any]) -> Any: ...

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]: ...


def _normalize_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def split_of(text: str) -> str:
    """The split a user text belongs to (train / validation / test), from a stable hash of its normalized form."""
    bucket = int(hashlib.sha256(_normalize_text(text).encode("utf-8")).hexdigest()[:8], 16) % 100
    for split, rng_ in SPLIT_BUCKETS.items():
        if bucket in rng_:
            return split
    raise AssertionError("unreachable: buckets cover 0..99")


def assistant_content(gen: TaskGenerator, answer: Any) -> str:
    """The assistant turn a specialist is trained to produce for ``answer``."""
    if isinstance(answer, dict):
        return json.dumps(answer, ensure_ascii=False)
    return str(answer)


def make_record(gen: TaskGenerator, fields: dict[str, Any], *, split: str, index: int) -> Record:
    """Render ``fields`` into the project's chat record (system, user, assistant) plus the structured fields."""
    text = gen.render(fields)
    record: Record = {
        "id": f"{gen.name}-{split}-{index:05d}",
        "task": gen.name,
        "split": split,
        "text": text,
    }
    messages = [{"role": "system", "content": gen.system_prompt}, {"role": "user", "content": text}]
    if gen.kind == "out_of_scope":
        record["messages"] = [{"role": "user", "content": text}]
        record["answer"] = None
    else:
        answer = gen.answer(fields)
        messages.append({"role": "assistant", "content": assistant_content(gen, answer)})
        record["messages"] = messages
        if gen.kind == "classification":
            record["label"] = answer
        record["answer"] = answer
        step_references = getattr(gen, "step_references", None)  # a composed task: each step's reference
        if callable(step_references):
            record["step_references"] = step_references(fields)
    record["fields"] = fields
    return record


def router_view(record: Record) -> Record:
    """The ``{"text", "route"}`` row the router is fitted on (``route`` is None for out-of-scope)."""
    task = record["task"]
    return {"text": record["text"], "route": None if task == "out_of_scope" else task}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def generate(gen: TaskGenerator, *, split: str, n: int, seed: int = 0) -> Iterator[Record]:
    """Yield ``n`` distinct records of ``split``; the same (task, split, n, seed) always gives the same records.

    Raises:
        ConfigError: unknown split or negative ``n``.
        DataError: the task's template space cannot give ``n`` distinct texts for this split.
    """
    _check_split(split)
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    rng = random.Random(f"cadre.synth:{gen.name}:{split}:{seed}")
    seen: set[str] = set()
    stale = 0
    produced = 0
    while produced < n:
        stale += 1
        if stale > _MAX_STALE_DRAWS:
            raise DataError(
                f"task {gen.name!r} ran out of distinct {split} examples after {produced} of {n}; "
                "ask for fewer examples or use another --seed"
            )
        fields = gen.sample_fields(rng)
        text = gen.render(fields)
        key = _normalize_text(text)
        if key in seen or split_of(text) != split:
            continue
        seen.add(key)
        stale = 0
        yield make_record(gen, fields, split=split, index=produced)
        produced += 1


def perturb_record(gen: TaskGenerator, record: Record, kind: str, *, seed: int = 0) -> Record:
    """A copy of ``record`` with ``kind`` ("numbers", "names", ...) re-sampled and its answer recomputed.

    The template and everything else stays the same, so a system that solved the original should solve this.

    Raises:
        ConfigError: ``kind`` is not one the task supports (see ``gen.resample_kinds``).
    """
    if kind not in gen.resample_kinds:
        raise ConfigError(
            f"task {gen.name!r} cannot re-sample {kind!r}; it supports: {', '.join(gen.resample_kinds) or 'none'}"
        )
    rng = random.Random(f"cadre.synth.perturb:{gen.name}:{record.get('id')}:{kind}:{seed}")
    fields = gen.resample(json.loads(json.dumps(record["fields"])), kind, rng)
    new = make_record(gen, fields, split=record.get("split", "test"), index=0)
    new["id"] = f"{record.get('id', gen.name)}~{kind}{seed}"
    new["perturbation"] = kind
    return new
