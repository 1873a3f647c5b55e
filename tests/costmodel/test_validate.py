"""Validation against published measurements: the Done-when targets, and an honest out-of-sample figure."""

from __future__ import annotations

import pytest

from cadre.costmodel.validation import engine_efficiency, load_validation_set, validate


@pytest.fixture(scope="module")
def report():
    return validate()


def test_validation_set_is_large_and_cited() -> None:
    vs = load_validation_set()
    assert len(vs.measurements) >= 30
    assert {m.source for m in vs.measurements} <= set(vs.sources)
    assert len({m.id for m in vs.measurements}) == len(vs.measurements)
    assert {m.kind for m in vs.measurements} >= {"decode_tps", "static_batch", "ttft", "max_throughput"}


def test_targets_are_met(report) -> None:
    assert report.n >= 30
    assert len(report.hardware_families) >= 6
    assert report.median_abs_pct_error <= 15.0
    assert report.share_within_30pct >= 0.80


def test_leave_one_source_out_is_reported_and_worse_than_the_fit(report) -> None:
    assert report.loso_median_abs_pct_error >= report.median_abs_pct_error
    assert 0 < report.loso_share_within_30pct <= 1
    # the ideal roofline (no fitted efficiency) is far off: the fit is doing real work
    assert report.ideal_median_abs_pct_error > 2 * report.median_abs_pct_error
    assert set(report.per_source) == {m.source for m in load_validation_set().measurements}


def test_fitted_efficiencies_are_physical() -> None:
    for engine in ("llama.cpp-metal", "llama.cpp-cuda", "trt-llm", "vllm"):
        e = engine_efficiency(engine)
        assert 0.05 <= e.bandwidth <= 1.0 and 0.05 <= e.compute <= 1.0
        assert 0 <= e.layer_overhead_s < 1e-2


def test_per_engine_errors_are_reported_and_the_shipped_table_is_current(report) -> None:
    from importlib import resources

    from cadre.costmodel.validation import ENGINE_ERRORS_FILE, engine_errors, engine_errors_yaml

    assert set(report.per_engine) == {m.engine for m in load_validation_set().measurements}
    assert sum(int(s["n"]) for s in report.per_engine.values()) == report.n
    for s in report.per_engine.values():
        assert s["loso_median_abs_pct_error"] >= 0 and 0 <= s["loso_share_within_30pct"] <= 1
    shipped = resources.files("cadre.costmodel").joinpath(ENGINE_ERRORS_FILE).read_text(encoding="utf-8")
    assert shipped == engine_errors_yaml(report), (
        "src/cadre/costmodel/data/engine_errors.yaml is stale: write engine_errors_yaml(validate()) to it"
    )
    assert engine_errors()["trt-llm"]["n"] == report.per_engine["trt-llm"]["n"]


def test_thin_areas_have_measurements() -> None:
    ms = load_validation_set().measurements
    consumer = {m.hardware for m in ms if m.hardware.startswith("rtx-") and m.precision.startswith("q")}
    assert consumer >= {"rtx-3090", "rtx-4090", "rtx-4080"}  # quantized decode on consumer CUDA cards
    assert sum(m.tp > 1 for m in ms) >= 10
