"""Charts are written, are real images, and carry the workloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.costmodel import compare, load_hardware, load_model, plot_compare, plot_roofline, roofline_workload
from cadre.errors import CapacityError, ConfigError

H100 = load_hardware("h100-sxm")


def _png_size(p: Path) -> tuple[int, int]:
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_roofline_png_and_html(tmp_path: Path) -> None:
    wls = [
        roofline_workload(load_model("llama-3-70b"), H100, precision="fp8", batches=(1, 8), label="70B"),
        roofline_workload(load_model("llama-3-8b"), H100, precision="fp8", batches=(1, 8, 64, 100_000)),
    ]
    assert [p.batch for p in wls[1].points] == [1, 8, 64]  # 100k sequences do not fit and are skipped
    assert wls[0].points[0].arithmetic_intensity == pytest.approx(2.0, rel=0.05)
    png = plot_roofline(H100, wls, tmp_path / "r.png", precision="fp8")
    w, h = _png_size(png)
    assert w >= 800 and h >= 500 and png.stat().st_size > 20_000
    html = plot_roofline(H100, wls, tmp_path / "r.html", precision="fp8").read_text()
    assert "<svg" in html and "70B" in html and "llama-3-8b" in html and "memory" in html
    with pytest.raises(ConfigError, match="unsupported"):
        plot_roofline(H100, wls, tmp_path / "r.txt")


def test_roofline_workload_that_never_fits() -> None:
    with pytest.raises(CapacityError, match="--tp"):
        roofline_workload(load_model("deepseek-v3"), H100, precision="fp8")


def test_compare_rows_and_chart(tmp_path: Path) -> None:
    rows = compare(load_model("gpt4-est"), load_model("llama-3-8b"), H100, batches=(1, 64), contexts=(1024,))
    assert [r.batch for r in rows] == [1, 64]
    for r in rows:
        assert r.generalist.devices >= 16 and r.specialist.devices == 1
        assert r.cost_ratio > 30  # the specialist is far cheaper per token
    # batching makes tokens cheaper for both
    assert rows[1].specialist.usd_per_million_tokens < rows[0].specialist.usd_per_million_tokens / 10
    p = plot_compare(rows, tmp_path / "c.png", hardware=H100)
    assert _png_size(p)[0] >= 800
