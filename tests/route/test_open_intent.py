"""Open-intent routing: the gate without out-of-scope examples, thresholds in the user's words, the fine-tuned
encoder saved with the router, and routers saved before these existed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import DataError, ModelLoadError
from cadre.route import GENERALIST, fit_router, load_router, save_router
from cadre.route.data import Example
from cadre.route.evaluation import evaluate_router, fpr_at_tpr, open_intent_metrics
from cadre.route.ood import COMBINED, SCORES, Mahalanobis, OODGate, attainable_alpha, choose_alpha, energy
from cadre.route.protocol import RouteDecision


def _in_scope(examples: list[Example]) -> list[Example]:
    return [ex for ex in examples if ex.route is not None]


def test_fpr_at_tpr_by_hand() -> None:
    # in scope: 10 scores 1..10; the threshold keeping 95% of them is 1 (the lowest); OOS at >= 1: 2 of 4
    s = [*range(1, 11), 0.5, 1.0, 3.0, -2.0]
    y = [1] * 10 + [0] * 4
    assert fpr_at_tpr(s, y) == pytest.approx(0.5)
    # keeping 80% of in-scope: threshold 3 -> one of 4 OOS kept
    assert fpr_at_tpr(s, y, tpr=0.8) == pytest.approx(0.25)
    assert fpr_at_tpr([1, 2], [1, 1]) is None


def test_open_intent_metrics_by_hand() -> None:
    def d(route: str, best: str, ind: float) -> RouteDecision:
        return RouteDecision(route=route, score=0.9, scores={best: 0.9, "zz": 0.1}, in_domain=ind)

    decisions = [
        d("a", "a", 0.9),
        d(GENERALIST, "b", 0.2),
        d("b", "a", 0.8),
        d(GENERALIST, "a", 0.1),
        d("a", "a", 0.3),
    ]
    examples = [
        Example("t1", "a"),
        Example("t2", "b"),
        Example("t3", "b"),
        Example("o1", None),
        Example("o2", None),
    ]
    m = open_intent_metrics(decisions, examples)
    assert m["domain_accuracy"] == pytest.approx(2 / 3)  # best route: a (right), b (right), a (wrong)
    assert m["in_scope_accuracy"] == pytest.approx(2 / 3)  # t1 and t3 reach the right specialist
    assert m["in_scope_kept"] == pytest.approx(2 / 3)
    assert m["oos_recall"] == pytest.approx(0.5) and m["oos_precision"] == pytest.approx(0.5)
    assert m["ood_auroc"] == pytest.approx(5 / 6)  # in-scope 0.9, 0.2, 0.8 vs OOS 0.1, 0.3
    assert m["accuracy_vs_oos_recall"][0] == {
        "threshold": 0.1,
        "in_scope_accuracy": pytest.approx(2 / 3),
        "oos_recall": 0.0,
    }


def test_mahalanobis_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = np.repeat([0, 1, 2], 20).astype(np.int64)
    x[y == 1] += 3.0
    m = Mahalanobis.fit(x, y, 3)
    q = rng.normal(size=(4, 5)).astype(np.float32)
    direct = np.array([[-(v - mu) @ m.precision @ (v - mu) for mu in m.means] for v in q.astype(np.float64)])
    assert np.allclose(m.route_scores(q), direct)
    assert np.allclose(m.score(q), direct.max(axis=1))
    from scipy.special import logsumexp

    logits = rng.normal(size=(6, 4)) * 50  # large logits: the stable form must not overflow
    assert np.allclose(energy(logits), logsumexp(logits, axis=1))


def test_gate_without_out_of_scope_examples(
    train_examples: list[Example], test_examples: list[Example], embedder: object
) -> None:
    router = fit_router(_in_scope(train_examples), embedder=embedder)  # type: ignore[arg-type]
    rep = router.report
    assert rep["out_of_scope_examples"] == 0
    loro = rep["ood_score_loro_auroc"]
    names = [*SCORES, *COMBINED]
    assert set(loro) == set(names)
    assert rep["ood_score"] == max(loro, key=lambda n: (loro[n], -names.index(n)))
    ev = evaluate_router(router, test_examples, batch_throughput=False)
    assert ev.ood_auroc is not None and ev.ood_auroc >= 0.85
    assert ev.oos_recall is not None and ev.oos_recall >= 0.4
    assert ev.in_scope_kept is not None and ev.in_scope_kept >= 0.85  # ood_alpha 0.05: about 95% kept
    for score in SCORES:
        forced = fit_router(_in_scope(train_examples), embedder=embedder, ood_score=score)  # type: ignore[arg-type]
        assert forced.report["ood_score"] == score and forced.gate.features == [SCORES[score]]
    both = fit_router(_in_scope(train_examples), embedder=embedder, ood_score="knn+energy")  # type: ignore[arg-type]
    assert both.gate.features == ["knn_similarity", "energy"] and both.gate.weights == [1.0, 1.0]
    # each part standardised by its held-out in-domain mean and spread: the calibration scores are centred
    assert abs(float(np.mean(both.gate.calib))) < 1e-6
    ev_both = evaluate_router(both, test_examples, batch_throughput=False)
    assert ev_both.in_scope_kept is not None and ev_both.in_scope_kept >= 0.85


@pytest.mark.parametrize(
    ("setting", "value"), [("min_in_scope_accuracy", 0.9), ("max_generalist_share", 0.3)]
)
def test_threshold_in_users_words_round_trips(
    setting: str, value: float, train_examples: list[Example], embedder: object, tmp_path: Path
) -> None:
    router = fit_router(train_examples, embedder=embedder, **{setting: value})  # type: ignore[arg-type]
    th = router.report["threshold"]
    est = th["held_out_estimate"]
    if setting == "min_in_scope_accuracy":
        assert th["target"] == "keep in-scope accuracy >= 0.9" and est["in_scope_accuracy"] >= 0.9
    else:
        assert th["target"] == "send at most 0.3 to the generalist" and est["generalist_share"] <= 0.3
    assert router.gate.alpha == th["ood_alpha"] and router.gate.alpha != router.spec.ood_alpha
    save_router(router, tmp_path / "r")
    again = load_router(tmp_path / "r", embedder=embedder)  # type: ignore[arg-type]
    assert again.gate.alpha == router.gate.alpha
    assert getattr(again.spec, setting) == value
    assert again.explain("Normalize: 1 May 2020").details["threshold"] == th


def test_threshold_that_cannot_be_met_is_a_clear_error() -> None:
    calib = np.linspace(0, 1, 50)
    gate = OODGate(alpha=0.05, k=5, calib=calib, calib_labels=np.zeros(50, dtype=np.int64))
    feats = np.zeros((50, 4))
    feats[:, 0] = calib
    correct = np.arange(50) < 40  # 80% right even with the gate off

    def choose(**target: float) -> tuple[float | None, dict[str, float]]:
        zeros = np.zeros(50, dtype=np.int64)
        return choose_alpha(gate, feats, None, in_pred=zeros, in_correct=correct, out_pred=None, **target)

    with pytest.raises(DataError, match=r"0\.800 even with the gate off"):
        choose(min_in_scope_accuracy=0.9)
    alpha, est = choose(min_in_scope_accuracy=0.7)
    assert alpha is not None and est["in_scope_accuracy"] >= 0.7
    alpha0, est0 = choose(max_generalist_share=0.0)
    assert est0["generalist_share"] == 0.0 and (alpha0 is None or alpha0 < alpha)


@pytest.mark.slow  # six fine-tunings of 64 pairs: about 2 minutes on an idle 2-core machine, 15 under load
def test_finetuned_encoder_is_saved_and_required(
    train_examples: list[Example], test_examples: list[Example], embedder: object, tmp_path: Path
) -> None:
    # tiny budget: 2 folds + the final fit, 64 pairs each
    small = [ex for ex in train_examples if ex.route is not None][::2] + [
        ex for ex in train_examples if ex.route is None
    ][:10]
    tiny = {"finetune_pairs": 64, "finetune_folds": 2, "min_examples_per_route": 4}
    router = fit_router(small, embedder=embedder, encoder="auto", **tiny)  # type: ignore[arg-type]
    enc = router.report["encoder"]
    assert set(enc["cv_accuracy"]) == {"frozen", "finetuned"}
    assert enc["chosen"] == max(("frozen", "finetuned"), key=lambda e: (enc["cv_accuracy"][e], e == "frozen"))
    forced = fit_router(small, embedder=embedder, encoder="finetuned", **tiny)  # type: ignore[arg-type]
    assert "+finetuned:" in forced.model_id and forced.model_id != embedder.model_id  # type: ignore[attr-defined]
    ev = evaluate_router(forced, test_examples, batch_throughput=False)
    assert ev.domain_accuracy is not None and ev.domain_accuracy >= 0.8
    texts = [ex.text for ex in test_examples[::5]]
    before = [(d.route, round(d.score, 4)) for d in forced.route_batch(texts)]

    out = tmp_path / "ft"
    save_router(forced, out)
    manifest = json.loads((out / "router.json").read_text())
    assert manifest["encoder"]["kind"] == "finetuned"
    assert (out / "encoder" / "model.safetensors").is_file()
    again = load_router(out)  # loads its own encoder from the router directory
    assert again.model_id == forced.model_id
    assert [(d.route, round(d.score, 4)) for d in again.route_batch(texts)] == before

    with pytest.raises(ModelLoadError, match="was built with embedding model"):
        load_router(out, embedder=embedder)  # type: ignore[arg-type]
    # another encoder's weights in its place: refused
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(out / "encoder" / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01
    save_file(weights, str(out / "encoder" / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="is not the one the router was fitted with"):
        load_router(out)


def test_router_saved_before_these_options_still_loads(
    train_examples: list[Example], test_examples: list[Example], embedder: object, tmp_path: Path
) -> None:
    router = fit_router(train_examples, embedder=embedder, encoder="frozen")  # type: ignore[arg-type]
    save_router(router, tmp_path / "r")
    # rewrite it as the previous cadre wrote it: no encoder entry, no new settings, no Mahalanobis arrays,
    # a gate over the first three features
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "r" / "router.json"
    m = json.loads(path.read_text())
    m.pop("encoder")
    for key in (
        "encoder",
        "finetune_pairs",
        "finetune_epochs",
        "finetune_folds",
        "ood_score",
        "min_in_scope_accuracy",
        "max_generalist_share",
        "max_seq_length",
        "latency_budget_ms",
    ):
        m["spec"].pop(key)
    m["ood"]["features"] = ["knn_similarity", "route_probability", "out_of_scope_similarity"]
    m["ood"]["weights"] = m["ood"]["weights"][:3] if m["ood"]["weights"] else None
    for key in ("mean", "scale"):
        m["ood"][key] = m["ood"][key][:3]
    path.write_text(json.dumps(m))
    arrays = {
        k: v
        for k, v in load_file(str(tmp_path / "r" / "arrays.safetensors")).items()
        if not k.startswith(("maha.", "gate."))
    }
    save_file(arrays, str(tmp_path / "r" / "arrays.safetensors"))
    old = load_router(tmp_path / "r", embedder=embedder)  # type: ignore[arg-type]
    assert old.maha is None and old.gate_view is None
    ev = evaluate_router(old, test_examples, batch_throughput=False)
    assert ev.domain_accuracy is not None and ev.domain_accuracy >= 0.9

    m["spec"]["no_such_setting"] = 1
    path.write_text(json.dumps(m))
    with pytest.raises(ModelLoadError, match="refit it"):
        load_router(tmp_path / "r", embedder=embedder)  # type: ignore[arg-type]


def test_gate_scores_requests_as_its_calibration_did(
    train_examples: list[Example], embedder: object, tmp_path: Path
) -> None:
    from cadre.route.crossfit import fold_ids
    from cadre.route.ood import FEATURES, route_similarity

    router = fit_router(_in_scope(train_examples), embedder=embedder, ood_score="knn")  # type: ignore[arg-type]
    view = router.gate_view
    assert view is not None and router.gate_head is not None
    # the gate's bank is the fold-0 fit's: every example outside fold 0, as the calibration scores saw it
    fold = fold_ids(router.bank_labels, router.report["folds"], router.spec.seed)
    assert np.array_equal(view.bank_mask, fold != 0)
    x = embedder.encode(["Normalize: 3 March 2021", "What is the capital of Kenya?"])  # type: ignore[attr-defined]
    probs = np.ones((2, len(router.routes))) / len(router.routes)
    feats = router._features(x, probs)
    knn = FEATURES.index("knn_similarity")
    bank, labels = router.bank[view.bank_mask], router.bank_labels[view.bank_mask]
    assert np.allclose(feats[:, knn], route_similarity(x @ bank.T, labels, len(router.routes), router.gate.k))
    full = route_similarity(x @ router.bank.T, router.bank_labels, len(router.routes), router.gate.k)
    assert (full >= feats[:, knn] - 1e-9).all() and (full > feats[:, knn] + 1e-6).any()
    save_router(router, tmp_path / "r")
    again = load_router(tmp_path / "r", embedder=embedder)  # type: ignore[arg-type]
    assert again.gate_view is not None and np.array_equal(again.gate_view.bank_mask, view.bank_mask)
    assert np.allclose(again._features(x, probs), feats)


def test_a_small_route_with_out_of_scope_examples_still_gates(
    train_examples: list[Example], test_examples: list[Example], embedder: object
) -> None:
    """One route with 9 examples: conformal p-values cannot fall below 1/10, so at ood_alpha=0.05 the gate would
    never fire; with out-of-scope examples it is raised to the attainable 0.1 and says so."""
    routes = sorted({ex.route for ex in train_examples if ex.route is not None})
    mine = [ex for ex in train_examples if ex.route == routes[0]][:9]
    others = [Example(text=ex.text, route=None) for ex in train_examples if ex.route != routes[0]][:40]
    router = fit_router(mine + others, embedder=embedder, strategy="centroid")  # type: ignore[arg-type]
    threshold = router.report["threshold"]
    assert threshold["ood_alpha"] == pytest.approx(0.1) and "9 in-domain examples" in threshold["note"]
    held_out = [ex for ex in test_examples if ex.route != routes[0]][:30]
    sent_away = sum(router.route(ex.text).route == GENERALIST for ex in held_out)
    assert sent_away >= 0.8 * len(held_out)
    assert (
        attainable_alpha(0.05, 19) == 0.05 and attainable_alpha(None, 3) is None
    )  # enough examples: as asked
