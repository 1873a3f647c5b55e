"""`cadre serve` as a real process: auth policy, SIGHUP reload, graceful shutdown on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.errors import ConfigError
from cadre.serve.auth import ApiKeys, is_loopback, keys_from_env

SPEC = {
    "specialists": [{"name": "support", "base": "smollm2-135m", "decoding": {"max_tokens": 4}}],
    "server": {"fallback": "error"},
}


def test_refuses_to_listen_beyond_localhost_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CADRE_API_KEY", raising=False)
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(SPEC))
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "e.yaml"), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "without an API key" in str(result.exception)


def test_key_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADRE_API_KEY", "aaaaaaaa1, bbbbbbbb2")
    assert keys_from_env() == ["aaaaaaaa1", "bbbbbbbb2"]
    assert keys_from_env("cccccccc3") == ["cccccccc3"]
    keys = ApiKeys(keys_from_env())
    assert keys.valid("bbbbbbbb2") and not keys.valid("bbbbbbbb")
    keys.require_for("0.0.0.0")  # a key is set: any interface is allowed
    with pytest.raises(ConfigError, match="at least 8"):
        ApiKeys(["short"])
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


@pytest.mark.slow
def test_sighup_reloads_and_sigterm_finishes_in_flight_requests(
    tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    eco = tmp_path / "ecosystem.yaml"
    eco.write_text(yaml.safe_dump(SPEC))
    port = unused_port()
    env = {**os.environ, "CADRE_API_KEY": "process-key-1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cadre.cli.main import main; main()",
            "serve",
            str(eco),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer process-key-1"}
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        ids = [m["id"] for m in httpx.get(f"{url}/v1/models", headers=headers).json()["data"]]
        assert "dates" not in ids
        # edit the file and send SIGHUP: the new specialist appears, the process keeps running
        spec = {
            **SPEC,
            "specialists": [*SPEC["specialists"], {"name": "dates", "decoding": {"max_tokens": 4}}],
        }
        eco.write_text(yaml.safe_dump(spec))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "dates" not in [m["id"] for m in httpx.get(f"{url}/v1/models", headers=headers).json()["data"]]:
            assert time.monotonic() < deadline, "SIGHUP did not reload the ecosystem"
            time.sleep(0.2)
        # SIGTERM while a request is in flight: it still gets its full answer, then the process exits cleanly
        out: dict[str, object] = {}

        def long_request() -> None:
            body = {"model": "dates", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 200}
            r = httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=120)
            out["status"], out["json"] = r.status_code, r.json()

        t = threading.Thread(target=long_request)
        t.start()
        while httpx.get(f"{url}/health", timeout=5).json()["in_flight"] == 0:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        # draining: the listener stays open, new work gets 503 + Retry-After, health says so
        health = httpx.get(f"{url}/health", timeout=5)
        assert health.status_code == 503 and health.json()["status"] == "draining"
        refused = httpx.post(f"{url}/v1/completions", json={"model": "dates", "prompt": "x"}, headers=headers)
        assert refused.status_code == 503 and "retry-after" in refused.headers
        t.join(timeout=120)
        assert out.get("status") == 200, out
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is "killed by SIGTERM"
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        log = proc.stdout.read() if proc.stdout else ""
        assert "Traceback" not in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
