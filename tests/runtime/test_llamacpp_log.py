"""llama.cpp's C log: warnings stay out of the default output, CADRE_DEBUG=1 shows everything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cadre.runtime.llamacpp import _lib

LOAD_GEMMA = "from cadre.runtime import load_backend; load_backend('gemma3-270m', n_ctx=256).close()"


def test_levels_follow_ggml_h(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cadre.runtime import llamacpp_log

    _lib()  # installs the callback
    monkeypatch.delenv("CADRE_DEBUG", raising=False)
    cb = llamacpp_log._callback
    cb(3, b"a warning\n", None)  # GGML_LOG_LEVEL_WARN: llama-cpp-python's table printed it as an error
    cb(5, b"its continuation\n", None)  # CONT follows the previous message's level
    cb(4, b"an error\n", None)
    cb(5, b"more of the error\n", None)
    assert capfd.readouterr().err == "an error\nmore of the error\n"
    monkeypatch.setenv("CADRE_DEBUG", "1")
    cb(2, b"info\n", None)
    assert capfd.readouterr().err == "info\n"


@pytest.mark.slow
def test_loading_a_model_prints_no_c_log_unless_debugging() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CADRE_DEBUG"}
    quiet = subprocess.run([sys.executable, "-c", LOAD_GEMMA], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    # gemma-3's vocabulary makes llama.cpp warn ("load: control-looking token ..."); none of it shows
    assert "llama_" not in quiet.stderr and "load:" not in quiet.stderr, quiet.stderr[:500]
    loud = subprocess.run(
        [sys.executable, "-c", LOAD_GEMMA], capture_output=True, text=True, env={**env, "CADRE_DEBUG": "1"}
    )
    assert "control-looking token" in loud.stderr and "llama_" in loud.stderr
