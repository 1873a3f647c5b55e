"""Export one discovered task as chat JSONL for ``cadre train``: train / validation / test, split by request,
with no near-duplicate requests across splits, the generalist's answers (or a teacher's) as targets.

Near-duplicates are found twice: requests equal after normalising (case, whitespace, digits to ``0``) are one
group; then requests whose embeddings have cosine similarity >= ``dedup_threshold`` are joined into one group
(connected components). Whole groups go to one split, so the test set never holds a rephrasing of a training
request.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import ConfigError, DataError, NotFoundError
from cadre.traffic.discover import TextEmbedder
from cadre.traffic.location import describe_store
from cadre.traffic.store import TrafficRecord, open_store

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["SPLIT_FILES", "ExportResult", "export_task", "near_duplicate_groups"]

SPLIT_FILES = {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}
_ROLES = {"system", "user", "assistant"}


@dataclass
class ExportResult:
    """What :func:`export_task` wrote."""

    task: int
    out: str
    files: dict[str, str]
    counts: dict[str, int]  # examples per split
    groups: int  # near-duplicate groups (each in exactly one split)
    skipped: dict[str, int] = field(default_factory=dict)  # why records were left out
    teacher: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _normal(text: str) -> str:
    return re.sub(r"\d", "0", " ".join(text.split()).casefold())


def near_duplicate_groups(
    texts: Sequence[str], vectors: NDArray[np.float32] | None, threshold: float
) -> list[int]:
    """A group id per text: equal after normalising, or (with ``vectors``, unit rows) cosine >= ``threshold``,
    joined transitively."""
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        union(i, first.setdefault(_normal(t), i))
    if vectors is not None and len(texts) > 1:
        block = 1024
        for start in range(0, len(texts), block):
            sims = vectors[start : start + block] @ vectors.T
            rows, cols = np.nonzero(sims >= threshold)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if start + r < c:
                    union(start + r, c)
    return [find(i) for i in range(len(texts))]


def _assign(groups: list[int], fractions: tuple[float, float, float], seed: int) -> list[str]:
    """A split per item, whole groups at a time, filling train / validation / test to their shares by items."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    order = list(members)
    random.Random(seed).shuffle(order)
    n = len(groups)
    targets = {"validation": fractions[1] * n, "test": fractions[2] * n}
    filled = {"validation": 0, "test": 0}
    out = ["train"] * n
    for g in order:
        # the held-out split furthest below its share takes the group; once both are full, train takes the rest
        name = max(targets, key=lambda s: targets[s] - filled[s])
        if filled[name] + len(members[g]) / 2 > targets[name]:
            continue
        filled[name] += len(members[g])
        for i in members[g]:
            out[i] = name
    return out


def _chat(record: TrafficRecord, answer: str) -> list[dict[str, str]] | None:
    msgs = []
    for m in record.messages:
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES or not isinstance(content, str):
            return None
        msgs.append({"role": str(role), "content": content})
    return [*msgs, {"role": "assistant", "content": answer}]


def _relabel(
    records: list[TrafficRecord], teacher: str, api_key_env: str | None, max_tokens: int
) -> list[str]:
    from cadre.runtime import load_backend
    from cadre.runtime.protocol import SamplingParams

    kw: dict[str, Any] = {}
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(
                f"teacher key: the environment variable {api_key_env} is not set; export it first"
            )
        kw["api_key"] = key
    backend = load_backend(teacher, **kw)
    try:
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
        return [backend.chat(r.messages, params).text for r in records]  # type: ignore[arg-type]
    finally:
        backend.close()


def export_task(
    store: str | Path,
    *,
    task: int,
    out: str | Path,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    dedup_threshold: float = 0.95,
    teacher: str | None = None,
    teacher_api_key_env: str | None = None,
    teacher_max_tokens: int = 512,
    include_truncated: bool = False,
    embedder: TextEmbedder | None = None,
    seed: int = 0,
) -> ExportResult:
    """Write ``task``'s requests (as numbered by the last ``discover_tasks``) to ``out``/{train,validation,test}.jsonl.

    Answers cut by ``max_tokens`` (finish reason ``length``; kept with ``include_truncated``, for a generalist whose
    limit is deliberately short), empty answers, and chats with tool turns are left out (counted in ``skipped``). ``teacher``: a model (e.g. ``openai:gpt-4o@https://api.openai.com/v1``) whose answers
    replace the generalist's as targets.

    Raises:
        NotFoundError: no such task (run ``cadre traffic tasks`` first).
        ConfigError: bad fractions or threshold.
        DataError: too few usable requests.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions {fractions}: give three non-negative shares that sum to 1")
    if not 0 < dedup_threshold <= 1:
        raise ConfigError(f"dedup threshold {dedup_threshold}: give a cosine similarity in (0, 1]")
    with open_store(store) as db:
        tasks = db.task_ids()
        if task not in tasks:
            known = ", ".join(map(str, tasks)) or "none yet"
            raise NotFoundError(
                f"task {task} is not in {describe_store(store)} (tasks: {known}); run `cadre traffic tasks` first"
            )
        records = db.task_records(task)
    skipped: dict[str, int] = {}
    usable: list[tuple[TrafficRecord, list[dict[str, str]]]] = []
    for r in records:
        why = (
            "empty answer"
            if not r.response.strip()
            else "truncated answer"
            if r.finish_reason == "length" and not include_truncated
            else None
        )
        chat = _chat(r, r.response) if why is None else None
        if why is None and chat is None:
            why = "tool or non-text turns"
        if why is not None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        assert chat is not None
        usable.append((r, chat))
    if len(usable) < 3:
        raise DataError(
            f"task {task} has {len(usable)} usable requests (skipped: {skipped}); capture more traffic"
        )
    if teacher is not None:
        answers = _relabel([r for r, _ in usable], teacher, teacher_api_key_env, teacher_max_tokens)
        usable = [
            (r, [*chat[:-1], {"role": "assistant", "content": a}])
            for (r, chat), a in zip(usable, answers, strict=True)
        ]
    prompts = [r.prompt for r, _ in usable]
    if embedder is None:
        from cadre.runtime.embeddings import get_embedder

        embedder = get_embedder()
    vectors = np.asarray(embedder.encode(prompts, batch_size=64), dtype=np.float32)
    groups = near_duplicate_groups(prompts, vectors, dedup_threshold)
    splits = _assign(groups, fractions, seed)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(SPLIT_FILES, 0)
    handles = {s: (out_dir / f).open("w", encoding="utf-8") for s, f in SPLIT_FILES.items()}
    try:
        for (r, chat), split in zip(usable, splits, strict=True):
            row = {"id": r.request_id, "messages": chat, "task": task, "split": split}
            handles[split].write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[split] += 1
    finally:
        for h in handles.values():
            h.close()
    return ExportResult(
        task=task,
        out=str(out_dir),
        files={s: str(out_dir / f) for s, f in SPLIT_FILES.items()},
        counts=counts,
        groups=len(set(groups)),
        skipped=skipped,
        teacher=teacher,
    )
