from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from cadre.errors import ConfigError, DataError
from cadre.traffic import discover_tasks, open_store
from cadre.traffic.discover import PS_THRESHOLD, cluster, prediction_strength

from .conftest import CachedEmbedder
from .traffic_data import mixed_traffic, write_store


def test_finds_the_generated_tasks_with_k_chosen_on_the_data(
    tmp_path: Path, embedder: CachedEmbedder
) -> None:
    records, truth = mixed_traffic(30)
    for r in records:  # priced traffic: invoices cost the most
        r.cost = 0.05 if r.request_id.startswith("invoices") else 0.01
    db = write_store(tmp_path / "t.db", records)
    report = discover_tasks(db, k_range=(2, 8), embedder=embedder)
    assert report.k == 4, report.scores
    assert set(report.scores) == set(report.silhouettes) == set(range(2, 9))
    assert report.criterion == "calinski_harabasz" and report.scores[4] == max(report.scores.values())
    ari = adjusted_rand_score(truth, report.labels)
    assert ari > 0.9, ari
    assert report.cost_basis == "price"
    top = report.tasks[0]  # numbered by cost: the invoices
    assert top.cost_share == pytest.approx(0.05 * 30 / (0.05 * 30 + 0.01 * 90))
    assert sum(t.requests for t in report.tasks) == 120
    assert sum(t.share for t in report.tasks) == pytest.approx(1.0)
    kinds = {}
    for t, label in zip(report.labels, truth, strict=True):
        kinds.setdefault(t, set()).add(label)
    intents = next(t for t in report.tasks if "intents" in kinds[t.task])
    invoices = next(t for t in report.tasks if "invoices" in kinds[t.task])
    # intents answer with one of 10 labels, invoices with a different JSON object each time
    assert intents.answer_agreement > 2 * invoices.answer_agreement
    with open_store(db) as store:
        assert store.task_ids() == [0, 1, 2, 3]
        members = store.task_records(0)
    assert len(members) == top.requests
    assert {r.request_id.split("-")[0] for r in members} == {"invoices"}
    assert set(top.examples) <= {r.prompt for r in members} and len(top.examples) == 3


def test_cluster_on_separable_points_and_a_fixed_k() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(5, 16, dtype=np.float32)
    x = np.concatenate([c + 0.05 * rng.standard_normal((20, 16)) for c in centres]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for criterion in ("calinski_harabasz", "silhouette"):
        labels, k, scores, _ = cluster(x, k_range=(2, 9), criterion=criterion)
        assert k == 5 and max(scores, key=scores.__getitem__) == 5
    assert adjusted_rand_score(np.repeat(np.arange(5), 20), labels) == 1.0
    assert cluster(x, k=3)[1] == 3


def test_prediction_strength_finds_tasks_inside_groups_of_tasks() -> None:
    # two far-apart groups of two tasks each (e.g. long documents vs short questions): the dispersion criteria
    # stop at the groups; the largest k whose clusters reproduce on held-out halves is the four tasks
    rng = np.random.default_rng(0)
    far, near = 10 * np.eye(2, 16), 1.5 * np.eye(2, 16, k=2)
    centres = [f + n for f in far for n in near]
    x = np.concatenate([c + 0.3 * rng.standard_normal((60, 16)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(4), 60)
    assert cluster(x, k_range=(2, 8), criterion="calinski_harabasz")[1] == 2
    labels, k, scores, _ = cluster(x, k_range=(2, 8), criterion="prediction_strength")
    assert k == 4 and adjusted_rand_score(truth, labels) == 1.0
    assert min(scores[2], scores[4]) >= PS_THRESHOLD > max(scores[kk] for kk in range(5, 9))
    assert prediction_strength(x, 4, seed=1) >= PS_THRESHOLD  # not a property of one seed


def test_clear_errors(tmp_path: Path, embedder: CachedEmbedder) -> None:
    records, _ = mixed_traffic(1)
    db = write_store(tmp_path / "t.db", records[:3])
    with pytest.raises(DataError, match="capture more traffic"):
        discover_tasks(db, embedder=embedder)
    with pytest.raises(ConfigError, match="at least 2"):
        discover_tasks(db, k=1)
    with pytest.raises(ConfigError, match="criterion"):
        discover_tasks(db, criterion="elbow")
