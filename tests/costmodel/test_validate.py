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
