"""Calibration measures this machine and stores it as hardware `local`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.costmodel import load_hardware
from cadre.costmodel.calibration import calibrate, measure_matmul_flops, measure_memory_bandwidth


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CADRE_HOME", str(tmp_path))
    return tmp_path


def test_measurements_are_positive_and_plausible() -> None:
    bw = measure_memory_bandwidth(size_bytes=32 * 2**20, repeats=2)
    fl = measure_matmul_flops(n=256, repeats=2)
    assert 1e8 < bw < 1e13 and 1e8 < fl < 1e14


def test_local_falls_back_to_documented_default(home: Path) -> None:
    hw = load_hardware("local")
    assert "uncalibrated" in hw.display_name and hw.measured is None


def test_calibrate_without_decode_stores_local(home: Path) -> None:
    c = calibrate(decode=False)
    assert Path(c.path) == home / "hardware-local.yaml" and Path(c.path).is_file()
    hw = load_hardware("local")
    assert hw.name == "local" and hw.measured is not None
    assert hw.memory_bandwidth_bytes_per_s == pytest.approx(c.memory_bandwidth_bytes_per_s)
    assert hw.flops("fp32") == pytest.approx(c.matmul_flops)
    assert load_hardware("local", price_per_hour=0.5).price_per_hour == 0.5


@pytest.mark.slow
def test_calibrate_with_llamacpp_decode(home: Path) -> None:
    c = calibrate(decode=True)
    assert c.decode_tokens_per_s and c.decode_tokens_per_s > 0
    assert c.predicted_decode_tokens_per_s and c.predicted_decode_tokens_per_s > 0
    assert c.seconds < 60
    assert load_hardware("local").measured.decode_tokens_per_s["smollm2-135m-q4_1"] == c.decode_tokens_per_s
