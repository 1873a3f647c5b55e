from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import NotFoundError
from cadre.traffic import TrafficRecord, discover_tasks, export_task, open_store
from cadre.traffic.export import near_duplicate_groups

from .conftest import CachedEmbedder
from .traffic_data import mixed_traffic, write_store


def read(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_export_splits_by_request_with_no_near_duplicates_across_splits(
    tmp_path: Path, embedder: CachedEmbedder
) -> None:
    records, _ = mixed_traffic(30)
    # near-duplicates of the first invoice requests: case, spacing, other digits
    extra = []
    for r in [r for r in records if r.request_id.startswith("invoices")][:10]:
        for j, variant in enumerate(
            (r.prompt.upper(), "  " + r.prompt.replace(" ", "  "), r.prompt.replace("1", "7"))
        ):
            extra.append(
                TrafficRecord(
                    f"{r.request_id}-dup{j}",
                    "chat",
                    "auto",
                    "generalist",
                    [{"role": "user", "content": variant}],
                    r.response,
                )
            )
    truncated = TrafficRecord(
        "cut",
        "chat",
        "auto",
        "generalist",
        [{"role": "user", "content": "Invoice total 12"}],
        "{",
        finish_reason="length",
    )
    db = write_store(tmp_path / "t.db", records + extra + [truncated])
    report = discover_tasks(db, k=4, embedder=embedder)
    with open_store(db) as store:
        task = next(t for t in store.task_ids() if any("dup" in r.request_id for r in store.task_records(t)))
    result = export_task(db, task=task, out=tmp_path / "out", embedder=embedder)
    rows = {s: read(f) for s, f in result.files.items()}
    assert (
        sum(result.counts.values())
        == sum(len(v) for v in rows.values())
        == report.tasks[task].requests - result.skipped.get("truncated answer", 0)
    )
    assert result.counts["train"] > result.counts["validation"] > 0 and result.counts["test"] > 0
    for split, items in rows.items():
        for row in items:
            assert row["split"] == split and row["messages"][-1]["role"] == "assistant"
    # no request in validation/test is a near-duplicate of a training request
    emb = embedder
    prompt = lambda row: row["messages"][-2]["content"]  # noqa: E731
    train = emb.encode([prompt(r) for r in rows["train"]])
    for split in ("validation", "test"):
        held = emb.encode([prompt(r) for r in rows[split]])
        assert float((held @ train.T).max()) < 0.95
    ids = {r["id"].split("-dup")[0] for s in ("validation", "test") for r in rows[s]}
    train_ids = {r["id"].split("-dup")[0] for r in rows["train"]}
    assert not ids & train_ids  # a request and its variants stay together


def test_near_duplicate_groups_by_text_and_by_embedding() -> None:
    texts = ["Refund order 12", "refund  ORDER 99", "Something else", "Something else entirely"]
    assert len(set(near_duplicate_groups(texts, None, 0.9))) == 3
    v = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.61, 0.79]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    groups = near_duplicate_groups(texts, v, 0.99)
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]


def test_unknown_task_names_the_known_ones(tmp_path: Path, embedder: CachedEmbedder) -> None:
    records, _ = mixed_traffic(10)
    db = write_store(tmp_path / "t.db", records)
    with pytest.raises(NotFoundError, match="run `cadre traffic tasks` first"):
        export_task(db, task=0, out=tmp_path / "o")
    discover_tasks(db, k=4, embedder=embedder)
    with pytest.raises(NotFoundError, match=r"tasks: 0, 1, 2, 3"):
        export_task(db, task=9, out=tmp_path / "o")
