"""The router's encoder forms: the lean path gives sentence-transformers' numbers, truncation and int8 change the
id, and a latency budget picks a form by measurement and cross-validation (real bundled MiniLM throughout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import ConfigError, ModelLoadError
from cadre.route import fit_router, load_router, save_router
from cadre.route.data import Example
from cadre.route.encoders import EncoderForm, LeanEmbedder, get_route_embedder
from cadre.route.onnx_encoder import OnnxEmbedder
from cadre.route.spaces import FORMS


@pytest.fixture(autouse=True, scope="module")
def _cadre_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ONNX exports are cached under $CADRE_HOME: one temporary home for this module."""
    home = tmp_path_factory.mktemp("cadre-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CADRE_HOME", str(home))
        yield home


LONG = " ".join(["please move my dentist appointment from tuesday to the friday after next"] * 6)
TEXTS = ["wake me up at seven", "what's the weather in paris tomorrow", LONG, "play some jazz"]


def test_lean_path_matches_sentence_transformers(embedder: object) -> None:
    from cadre.runtime.embeddings import get_embedder

    lean = get_route_embedder()
    assert isinstance(lean, LeanEmbedder)
    assert lean.model_id == get_embedder().model_id  # same numbers, same id: routers fitted before still load
    ref = get_embedder().encode(TEXTS)
    one_by_one = np.stack([lean.encode([t])[0] for t in TEXTS])  # single requests: no padding
    batched = lean.encode(TEXTS)  # padded batch, sorted by length, rows back in input order
    for got in (one_by_one, batched):
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * ref).sum(axis=1).min() > 0.99999


def test_truncation_and_int8_are_part_of_the_id() -> None:
    full = get_route_embedder()
    short = get_route_embedder(form=EncoderForm(max_seq_length=16))
    assert short.model_id == full.model_id + "+len16"
    a, b = full.encode(TEXTS), short.encode(TEXTS)
    cos = (a * b).sum(axis=1)
    assert cos[[0, 1, 3]].min() > 0.99999  # short requests: unchanged
    assert cos[2] < 0.999  # the long one is embedded from its first 16 tokens only
    q = get_route_embedder(form=EncoderForm("torch", "int8", 32))
    assert q.model_id.endswith("+int8+len32")
    assert (q.encode(TEXTS[:2]) * a[:2]).sum(axis=1).min() > 0.9
    with pytest.raises(ConfigError, match="too short"):
        EncoderForm(max_seq_length=4)
    with pytest.raises(ConfigError, match="unknown embedding precision"):
        EncoderForm(precision="fp8")
    with pytest.raises(ConfigError, match="unknown embedding runtime"):
        EncoderForm(runtime="tensorrt")


def test_onnx_runtime_gives_torch_numbers_at_fp32_and_its_own_id_at_int8(_cadre_home: Path) -> None:
    full = get_route_embedder()
    onnx32 = get_route_embedder(form=EncoderForm("onnx", "fp32"))
    assert isinstance(onnx32, OnnxEmbedder) and onnx32.model_id == full.model_id  # same numbers, same id
    ref = full.encode(TEXTS)
    for got in (onnx32.encode(TEXTS), np.stack([onnx32.encode([t])[0] for t in TEXTS])):
        assert (got * ref).sum(axis=1).min() > 0.99999
    onnx8 = get_route_embedder(form=EncoderForm("onnx", "int8"))
    assert onnx8.model_id == full.model_id + "+onnx-int8"
    assert (onnx8.encode(TEXTS) * ref).sum(axis=1).min() > 0.9
    assert sorted(p.name.split("-")[-1] for p in (_cadre_home / "cache" / "onnx").iterdir()) == [
        "fp32.onnx",
        "int8.onnx",
    ]
    with pytest.raises(ConfigError, match="fp32 or int8"):
        get_route_embedder(form=EncoderForm("onnx", "bf16"))


def _small(train_examples: list[Example]) -> list[Example]:
    return [ex for ex in train_examples if ex.route is not None][::4]  # 30 examples, 10 per route


def test_truncated_router_round_trips_and_refuses_another_form(
    train_examples: list[Example], tmp_path: Path
) -> None:
    router = fit_router(_small(train_examples), max_seq_length=32, min_examples_per_route=5)
    assert router.model_id.endswith("+len32")
    texts = ["Normalize: 7 June 2011", LONG]
    before = [(d.route, round(d.score, 5)) for d in router.route_batch(texts)]
    save_router(router, tmp_path / "r")
    again = load_router(tmp_path / "r")
    assert again.model_id == router.model_id
    assert [(d.route, round(d.score, 5)) for d in again.route_batch(texts)] == before
    with pytest.raises(ModelLoadError, match=r"\+len32"):
        load_router(tmp_path / "r", embedder=get_route_embedder())
    assert router.spec.embedding_runtime == "torch"


@pytest.mark.slow  # times 6 forms on 8 requests (1 round), cross-fits each; reuses the module's ONNX exports
def test_latency_budget_picks_the_most_accurate_form_that_fits(
    train_examples: list[Example], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    import cadre.route.embedding
    from cadre.route.spaces import choose_form

    # fewer timed requests than a real fit (100 x 3 rounds): the choice logic and the report are the same
    monkeypatch.setattr(
        cadre.route.embedding, "choose_form", functools.partial(choose_form, timing_texts=8, rounds=1)
    )
    router = fit_router(_small(train_examples), latency_budget_ms=10_000, min_examples_per_route=5)
    lat = router.report["latency"]
    names = [f.name for f in FORMS]
    assert set(lat["forms"]) == set(names) and lat["budget_ms"] == 10_000
    assert (
        lat["measured_on"].startswith("8 example texts one at a time")
        and "median of 1 rounds" in lat["measured_on"]
    )
    for row in lat["forms"].values():
        assert 0 < row["p50_ms"] <= row["p99_ms"] < 10_000 and 0 <= row["cv_accuracy"] <= 1
    acc = {n: lat["forms"][n]["cv_accuracy"] for n in names}
    assert lat["chosen"] == max(names, key=lambda n: (acc[n], -names.index(n)))  # ties: the less lossy form
    chosen = FORMS[names.index(lat["chosen"])]
    assert EncoderForm.of(router.spec) == chosen and router.model_id.endswith(chosen.suffix)
    save_router(router, tmp_path / "r")
    again = load_router(tmp_path / "r")  # the chosen form is rebuilt from the saved spec
    assert again.model_id == router.model_id
    details = again.explain("Normalize: 7 June 2011").details
    assert details["latency"]["chosen"] == lat["chosen"] and details["embedding_model"] == router.model_id


def test_a_budget_no_form_meets_is_a_clear_error(embedder: object) -> None:
    from cadre.route.config import RouterSpec
    from cadre.route.spaces import choose_form

    texts = ["wake me up at seven", "play some jazz", "what's the weather"]
    with pytest.raises(ConfigError, match=r"no encoder form meets latency_budget_ms=0\.001.*torch-fp32/full"):
        choose_form(
            RouterSpec(latency_budget_ms=0.001),
            embedder,  # type: ignore[arg-type]
            texts,
            own_rows=embedder.encode(texts),  # type: ignore[attr-defined]
            n_in=3,
            folds=2,
            cross_fit_space=lambda space: pytest.fail("nothing within the budget: no cross-fitting"),
            candidates=[EncoderForm()],
            rounds=1,
        )
