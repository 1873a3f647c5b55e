"""Seeded synthetic task data, generated here (no external data): three specialist tasks and out-of-scope requests.

>>> from cadre.synth import get_generator, generate, write_task
>>> rec = next(generate(get_generator("normalize"), split="test", n=1, seed=0))
>>> sorted(rec)  # doctest: +NORMALIZE_WHITESPACE
['answer', 'fields', 'id', 'messages', 'split', 'task', 'text']

Tasks (``GENERATORS.names()``): ``intents`` (support-message intent triage, classification, 10 labels),
``invoices`` (field extraction to JSON), ``normalize`` (date/amount normalization, exact answers) and
``out_of_scope`` (requests for the generalist), and ``composed`` (a support message with an invoice inside,
answered as one JSON object: the three tasks at once, with per-step references in ``step_references``). Third-party generators register under the entry-point group
``cadre.generators``.
"""

from __future__ import annotations

from cadre.registry import Registry
from cadre.synth._base import (
    SPLITS,
    Record,
    TaskGenerator,
    TaskKind,
    assistant_content,
    generate,
    make_record,
    perturb_record,
    router_view,
    split_of,
)
from cadre.synth._write import TaskFiles, read_jsonl, write_jsonl, write_router_data, write_task

__all__ = [
    "GENERATORS",
    "SPLITS",
    "TASKS",
    "Record",
    "TaskFiles",
    "TaskGenerator",
    "TaskKind",
    "assistant_content",
    "generate",
    "get_generator",
    "make_record",
    "perturb_record",
    "read_jsonl",
    "router_view",
    "split_of",
    "write_jsonl",
    "write_router_data",
    "write_task",
]

GENERATORS: Registry[TaskGenerator] = Registry("generators")
GENERATORS.register("intents", "cadre.synth.intents:GENERATOR")
GENERATORS.register("invoices", "cadre.synth.invoices:GENERATOR")
GENERATORS.register("normalize", "cadre.synth.normalize:GENERATOR")
GENERATORS.register("out_of_scope", "cadre.synth.out_of_scope:GENERATOR")
GENERATORS.register("composed", "cadre.synth.composed:GENERATOR")

TASKS = ("intents", "invoices", "normalize")
"""The three specialist tasks the demo trains (``out_of_scope`` is the generalist's share)."""


def get_generator(name: str) -> TaskGenerator:
    """The generator registered as ``name``; raises NotFoundError (with close matches) for an unknown name."""
    return GENERATORS.get(name)
