"""The embedding router end to end on generated multi-domain data: fit, route, OOD gate, save/load, chat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadre.errors import DataError, ModelLoadError, NotFoundError
from cadre.route import GENERALIST, Router, fit_router, load_router, save_router
from cadre.route.data import Example
from cadre.route.evaluation import evaluate_router

STRATEGIES = ["centroid", "knn", "linear"]


@pytest.fixture(scope="module")
def auto_router(train_examples: list[Example], embedder: object):  # type: ignore[no-untyped-def]
    return fit_router(train_examples, embedder=embedder)  # type: ignore[arg-type]


def test_auto_chooses_by_cross_validation(auto_router) -> None:  # type: ignore[no-untyped-def]
    rep = auto_router.report
    assert set(rep["cv_accuracy"]) == set(STRATEGIES)
    assert rep["strategy"] == max(STRATEGIES, key=lambda s: (rep["cv_accuracy"][s], -STRATEGIES.index(s)))
    assert auto_router.kind == rep["strategy"]
    assert isinstance(auto_router, Router)
    assert auto_router.routes == ["intents", "invoices", "normalize"]


def test_held_out_accuracy_and_ood(auto_router, test_examples: list[Example]) -> None:  # type: ignore[no-untyped-def]
    rep = evaluate_router(auto_router, test_examples, batch_throughput=False)
    assert rep.domain_accuracy is not None and rep.domain_accuracy >= 0.95
    assert rep.ood_auroc is not None and rep.ood_auroc >= 0.9
    assert rep.accuracy >= 0.85
    assert rep.abstention_recall is not None and rep.abstention_recall >= 0.6
    assert rep.p99_ms > 0 and rep.p50_ms <= rep.p99_ms
    assert sum(sum(r) for r in rep.confusion["matrix"]) == len(test_examples)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_fits_saves_and_reloads_identically(
    strategy: str,
    train_examples: list[Example],
    test_examples: list[Example],
    embedder: object,
    tmp_path: Path,
) -> None:
    router = fit_router(train_examples, strategy=strategy, embedder=embedder)  # type: ignore[arg-type]
    assert router.kind == strategy
    texts = [ex.text for ex in test_examples[::4]]
    before = router.route_batch(texts)
    save_router(router, tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "arrays.safetensors",
        "examples.jsonl",
        "router.json",
    ]
    again = load_router(tmp_path / "r", embedder=embedder)  # type: ignore[arg-type]
    after = again.route_batch(texts)
    assert [d.route for d in before] == [d.route for d in after]
    np.testing.assert_allclose([d.score for d in before], [d.score for d in after], rtol=1e-5)
    in_scope = [ex for ex in test_examples if ex.route is not None]
    hits = [
        d.scores and max(d.scores, key=d.scores.get) == ex.route
        for d, ex in zip(router.route_batch([e.text for e in in_scope]), in_scope)
    ]  # type: ignore[arg-type]
    assert np.mean(hits) >= 0.9


def test_fit_is_deterministic(train_examples: list[Example], embedder: object) -> None:
    a = fit_router(train_examples, strategy="linear", embedder=embedder)  # type: ignore[arg-type]
    b = fit_router(train_examples, strategy="linear", embedder=embedder)  # type: ignore[arg-type]
    assert a.temperature == b.temperature  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a.gate.calib, b.gate.calib)  # type: ignore[attr-defined]


def test_loading_with_another_embedding_model_is_an_error(auto_router, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    save_router(auto_router, tmp_path / "r")

    class Other:
        model_id = "someone/else"

        def encode(self, texts, *, batch_size=64):  # type: ignore[no-untyped-def]
            raise AssertionError("must not be called")

    with pytest.raises(
        ModelLoadError, match="built with embedding model 'sentence-transformers/all-MiniLM-L6-v2'"
    ):
        load_router(tmp_path / "r", embedder=Other())  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="not a router directory"):
        load_router(tmp_path)


def test_ood_gate_keeps_in_domain_false_rejects_near_alpha(auto_router, test_examples: list[Example]) -> None:  # type: ignore[no-untyped-def]
    in_scope = [ex.text for ex in test_examples if ex.route is not None]
    sent = np.mean([d.route == GENERALIST for d in auto_router.route_batch(in_scope)])
    # conformal guarantee: <= alpha (0.05) in expectation; allow sampling noise on 120 requests
    assert sent <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(in_scope))


def test_route_chat_uses_context_and_sticks(auto_router) -> None:  # type: ignore[no-untyped-def]
    conv = [
        {"role": "user", "content": "Normalize: March 3rd, 2021"},
        {"role": "assistant", "content": "2021-03-03"},
        {"role": "user", "content": "and 4 July 1999?"},
    ]
    d = auto_router.route_chat(conv, current="normalize")
    assert d.route == "normalize"
    switched = auto_router.route_chat(
        [
            *conv,
            {
                "role": "user",
                "content": "Hi, I want a refund for order 123-4567890, the item arrived broken.",
            },
        ],
        current="normalize",
    )
    assert switched.route == "intents", switched.reason
    with pytest.raises(DataError, match="user message"):
        auto_router.route_chat([{"role": "system", "content": "be nice"}])


def test_sticky_rule_keeps_current_route_when_unsure(auto_router) -> None:  # type: ignore[no-untyped-def]
    auto_router.spec.switch_confidence = 1.0  # nothing is ever confident enough to switch
    try:
        d = auto_router.route_chat(
            [{"role": "user", "content": "Hi, I want a refund for order 123-4567890, it arrived broken."}],
            current="normalize",
        )
    finally:
        auto_router.spec.switch_confidence = 0.8
    assert d.route == "normalize" and d.reason.startswith("sticky")


def test_explain_lists_nearest_examples(auto_router) -> None:  # type: ignore[no-untyped-def]
    exp = auto_router.explain("What is the capital of Norway?", k=3)
    assert exp.decision.route == GENERALIST
    assert len(exp.nearest) == 3
    assert exp.nearest[0].similarity >= exp.nearest[-1].similarity
    assert "in_domain_p_value" in exp.details


def test_empty_text_is_rejected(auto_router) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="empty"):
        auto_router.route("   ")


def test_single_route_router(embedder: object, train_examples: list[Example]) -> None:
    one = [ex for ex in train_examples if ex.route in ("normalize", None)]
    router = fit_router(one, embedder=embedder)  # type: ignore[arg-type]
    assert router.routes == ["normalize"]
    assert router.route("What is the capital of Kenya?").route == GENERALIST
    assert router.route("Normalize: 12 Jan 2020").route == "normalize"


def test_int8_router_records_its_precision(
    train_examples: list[Example], tmp_path: Path, embedder: object
) -> None:
    small = [ex for ex in train_examples if ex.route is not None][::3]
    router = fit_router(small, embedding_precision="int8", min_examples_per_route=5)
    assert router.embedder.model_id.endswith("+int8")  # type: ignore[attr-defined]
    assert router.route("Normalize: 7 June 2011").route == "normalize"
    save_router(router, tmp_path / "r")
    again = load_router(tmp_path / "r")  # builds the int8 embedder from the saved spec
    assert again.route("Normalize: 7 June 2011").route == "normalize"
    with pytest.raises(ModelLoadError, match=r"\+int8"):
        load_router(tmp_path / "r", embedder=embedder)  # type: ignore[arg-type]
