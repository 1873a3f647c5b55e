"""Writing generated tasks to disk as JSONL (chat records, router rows, out-of-scope set) with a manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.config.jsonl import iter_jsonl
from cadre.errors import NotFoundError
from cadre.synth._base import Record, generate, router_view

__all__ = ["TaskFiles", "read_jsonl", "write_jsonl", "write_router_data", "write_task"]

OUT_OF_SCOPE = "out_of_scope"


@dataclass
class TaskFiles:
    """What :func:`write_task` wrote: split name -> path, plus counts."""

    task: str
    out_dir: Path
    files: dict[str, Path] = field(
        default_factory=dict
    )  # train, validation, test, out_of_scope, router_<split>
    counts: dict[str, int] = field(default_factory=dict)
    seed: int = 0


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as JSON lines atomically (temp file then rename); returns how many were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, p)
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line raises DataError naming the file and line number."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"data file {str(p)!r} does not exist; generate it with `cadre data generate`")
    return [row for _, row in iter_jsonl(p, fix="fix or delete that line")]


def write_task(
    name: str,
    out_dir: str | Path,
    n_train: int = 800,
    n_val: int = 100,
    n_test: int = 200,
    seed: int = 0,
    *,
    n_oos: int | None = None,
) -> TaskFiles:
    """Generate task ``name`` and write it under ``out_dir``.

    Files: ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` (chat records with ``messages``, ``label`` or
    ``answer``, ``text``, ``fields``), ``out_of_scope.jsonl`` (held-out out-of-scope requests, from the test
    bucket of the out-of-scope generator), ``router_<split>.jsonl`` (``{"text", "route"}`` rows), and
    ``manifest.json``. ``n_oos`` defaults to ``n_test``.

    Raises:
        NotFoundError: unknown task name.
        DataError: the task cannot produce that many distinct examples.
    """
    from cadre.synth import get_generator

    gen = get_generator(name)
    out = Path(out_dir)
    result = TaskFiles(task=name, out_dir=out, seed=seed)
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_test)):
        records = list(generate(gen, split=split, n=n, seed=seed))
        result.files[split] = out / f"{split}.jsonl"
        result.counts[split] = write_jsonl(result.files[split], records)
        result.files[f"router_{split}"] = out / f"router_{split}.jsonl"
        write_jsonl(result.files[f"router_{split}"], (router_view(r) for r in records))
    if name != OUT_OF_SCOPE:
        oos = list(
            generate(
                get_generator(OUT_OF_SCOPE), split="test", n=n_test if n_oos is None else n_oos, seed=seed
            )
        )
        result.files[OUT_OF_SCOPE] = out / f"{OUT_OF_SCOPE}.jsonl"
        result.counts[OUT_OF_SCOPE] = write_jsonl(result.files[OUT_OF_SCOPE], oos)
    manifest = {
        "task": name,
        "kind": gen.kind,
        "metric": gen.metric,
        "labels": list(gen.labels) if gen.labels else None,
        "system_prompt": gen.system_prompt,
        "seed": seed,
        "counts": result.counts,
        "files": {k: v.name for k, v in result.files.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return result


def write_router_data(
    tasks: Sequence[str],
    out_dir: str | Path,
    *,
    n_per_task: dict[str, int] | None = None,
    n_oos: dict[str, int] | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """Write a mixed router data set: ``{"text", "route"}`` rows for each task plus out-of-scope (route null).

    ``n_per_task`` / ``n_oos`` map split -> count (defaults: train 200 / validation 50 / test 100 per task and the
    same for out-of-scope). Returns split -> path of ``router_<split>.jsonl`` under ``out_dir``.
    """
    from cadre.synth import get_generator

    per_task = n_per_task or {"train": 200, "validation": 50, "test": 100}
    oos_n = n_oos or per_task
    paths: dict[str, Path] = {}
    for split in ("train", "validation", "test"):
        rows: list[Record] = []
        for task in tasks:
            rows += [
                router_view(r)
                for r in generate(get_generator(task), split=split, n=per_task[split], seed=seed)
            ]
        rows += [
            router_view(r)
            for r in generate(get_generator(OUT_OF_SCOPE), split=split, n=oos_n[split], seed=seed)
        ]
        paths[split] = Path(out_dir) / f"router_{split}.jsonl"
        write_jsonl(paths[split], rows)
    return paths
