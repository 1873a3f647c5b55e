"""End to end: ``cadre demo --fast`` with the real bundled models, then ``cadre serve`` on its ecosystem,
answering over a socket to the official ``openai`` client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from cadre.serve import load_ecosystem

pytestmark = pytest.mark.slow

CADRE = [str(Path(sys.executable).parent / "cadre")]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    env = {**os.environ, "CADRE_HOME": os.environ.get("CADRE_HOME", str(Path.home() / ".cadre"))}
    proc = subprocess.run(
        [*CADRE, "demo", "--fast", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert Path(result["report_html"]) == out / "report.html"
    return out


def test_artifacts_exist_and_agree(demo_out: Path) -> None:
    manifest = json.loads((demo_out / "manifest.json").read_text())["steps"]
    tasks = ["intents", "invoices", "normalize"]
    for step in [
        "data",
        "router",
        "ecosystem",
        *[f"train-{t}" for t in tasks],
        *[f"eval-{t}" for t in tasks],
    ]:
        assert manifest[step]["status"] == "done", (step, manifest[step]["note"])
    for t in tasks:
        adapter = demo_out / "specialists" / f"{t}.gguf"
        assert adapter.stat().st_size > 100_000 and adapter.read_bytes()[:4] == b"GGUF"
        assert (demo_out / "specialists" / t / "adapter_model.safetensors").is_file()
        summary = json.loads((demo_out / "eval" / t / "summary.json").read_text())
        assert summary["complete"] and set(summary["systems"]) == {"generalist", "specialist", "ecosystem"}
    # the report's table is the evaluation's numbers, not its own
    table = json.loads((demo_out / "table1.json").read_text())
    assert [r["task"] for r in table] == tasks
    for row in table:
        s = json.loads((demo_out / "eval" / row["task"] / "summary.json").read_text())
        assert row["specialist"] == pytest.approx(s["systems"]["specialist"]["metric"])
        assert row["generalist"] == pytest.approx(s["systems"]["generalist"]["metric"])
        assert row["low"] <= row["difference"] <= row["high"]
    html = (demo_out / "report.html").read_text()
    md = (demo_out / "report.md").read_text()
    for text in (html, md):
        assert "Table 1 on this machine" in text and "Audit of the paper" in text and "cadre serve" in text
    assert html.count("data:image/png;base64,") >= 3  # scores, routing confusion, roofline
    eco = load_ecosystem(demo_out / "ecosystem.yaml")
    assert {s.name for s in eco.specialists} == set(tasks)
    assert all(s.adapter and eco.resolve(s.adapter).is_file() for s in eco.specialists)
    assert eco.router.path and (eco.resolve(eco.router.path) / "router.json").is_file()
    assert yaml.safe_load((demo_out / "ecosystem.yaml").read_text())["generalist"]["model"]


def test_rerun_reuses_every_step(demo_out: Path) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*CADRE, "demo", "--fast", "--out", str(demo_out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reused" in proc.stderr and "→ train" not in proc.stderr
    assert time.perf_counter() - t0 < 120


def test_serve_answers_over_a_socket(demo_out: Path, unused_port: Callable[[], int]) -> None:
    import openai

    port = unused_port()
    server = subprocess.Popen(
        [*CADRE, "serve", str(demo_out / "ecosystem.yaml"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "cadre serve did not come up"
            time.sleep(1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=300)
        resp = client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "Where is my order #48213? It still has not arrived."}],
            max_tokens=12,
        )
        assert resp.choices[0].message.content
        assert resp.model_extra and resp.model_extra["cadre"]["route"] == "intents"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
