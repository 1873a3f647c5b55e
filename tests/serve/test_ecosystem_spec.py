"""The ecosystem spec, `cadre init` and `cadre check`: validation with key paths, loading nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.errors import ConfigError, NotFoundError
from cadre.serve import check_adapter_path, load_ecosystem, parse_ecosystem
from cadre.serve.check import check_ecosystem

MIN = {"specialists": [{"name": "a"}], "server": {"fallback": "error"}}


def test_minimal_spec_has_defaults() -> None:
    spec = parse_ecosystem(MIN)
    assert spec.specialists[0].base == "smollm2-135m"
    assert spec.specialists[0].adapter is None
    assert spec.server.queue_size == 64
    assert spec.generalist is None


def test_every_error_names_its_key_path_all_at_once() -> None:
    bad = {
        "specialists": [
            {"name": "../etc", "adapter": "x"},
            {"name": "auto"},
            {"name": "ok", "decoding": {"temperature": -1}, "typo": 1},
        ],
        "server": {"queue_size": 0},
        "generalist": {"model": "openai:m@http://x/v1", "api_key_env": "NOT A NAME"},
    }
    with pytest.raises(ConfigError) as err:
        parse_ecosystem(bad, source="eco.yaml")
    msg = str(err.value)
    for path in (
        "eco.yaml: specialists.0.name",
        "specialists.1.name",
        "specialists.2.decoding.temperature",
        "specialists.2.typo: unknown key",
        "server.queue_size",
        "generalist.api_key_env",
    ):
        assert path in msg, path
    assert "reserved" in msg and "no paths" in msg


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_ecosystem({"specialists": [{"name": "a"}, {"name": "a"}], "server": {"fallback": "error"}})
    with pytest.raises(ConfigError, match="no generalist is configured"):
        parse_ecosystem({"specialists": [{"name": "a"}]})  # fallback defaults to the generalist
    with pytest.raises(ConfigError, match=r"router: .*build\.k"):
        parse_ecosystem({**MIN, "router": {"build": {"k": 0}}})
    with pytest.raises(ConfigError, match=r"build\.nope: unknown key"):
        parse_ecosystem({**MIN, "router": {"build": {"nope": 1}}})
    with pytest.raises(ConfigError, match=r"knowledge\.corpus"):
        parse_ecosystem(
            {"specialists": [{"name": "a", "knowledge": {"corpus": "../x"}}], "server": {"fallback": "error"}}
        )


def test_relative_paths_resolve_against_the_file_and_adapters_stay_under_the_root(tmp_path: Path) -> None:
    (tmp_path / "eco.yaml").write_text(yaml.safe_dump({**MIN, "router": {"path": "r"}}))
    spec = load_ecosystem(tmp_path / "eco.yaml")
    assert spec.resolve("adapters/a.gguf") == tmp_path / "adapters/a.gguf"
    assert check_adapter_path(spec, "adapters/a.gguf") == (tmp_path / "adapters/a.gguf").resolve()
    with pytest.raises(ConfigError, match="outside"):
        check_adapter_path(spec, "../../etc/passwd")
    with pytest.raises(ConfigError, match="outside"):
        check_adapter_path(spec, "/etc/passwd")


def test_the_shipped_template_is_valid_and_serves_offline() -> None:
    text = files("cadre.serve").joinpath("templates/ecosystem.yaml").read_text()
    spec = parse_ecosystem(yaml.safe_load(text), source="template")
    assert len(spec.specialists) >= 2
    assert {s.base for s in spec.specialists} == {"smollm2-135m"}
    assert spec.generalist is not None and not spec.generalist.model.startswith("openai:")
    assert all(len(s.examples) >= 8 for s in spec.specialists)  # enough for the router's minimum


def test_cli_init_then_check(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "eco" / "ecosystem.yaml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("# cadre ecosystem")
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    result = runner.invoke(app, ["check", str(target), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [m["name"] for m in report["models"]] == ["support", "invoices", "generalist"]
    assert "does not exist yet" in " ".join(report["models"][0]["notes"])  # adapters not trained yet
    assert report["router"].startswith("fit at start-up")


def test_check_reports_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CADRE_TEST_MISSING_KEY", raising=False)
    data = {
        "specialists": [{"name": "a", "examples": ["x"] * 8}, {"name": "b"}],
        "generalist": {
            "model": "openai:gpt@https://api.example.com/v1",
            "api_key_env": "CADRE_TEST_MISSING_KEY",
        },
    }
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(data))
    report = check_ecosystem(tmp_path / "e.yaml")
    warnings = " ".join(report["warnings"])
    assert "CADRE_TEST_MISSING_KEY is not set" in warnings
    assert "reachable by name only: b" in warnings
    with pytest.raises(NotFoundError):
        check_ecosystem(tmp_path / "missing.yaml")


def test_check_loads_nothing_heavy(tmp_path: Path) -> None:
    text = files("cadre.serve").joinpath("templates/ecosystem.yaml").read_text()
    (tmp_path / "e.yaml").write_text(text)
    code = (
        "import sys; from cadre.serve.check import check_ecosystem; check_ecosystem(sys.argv[1]); "
        "heavy = [m for m in ('torch', 'llama_cpp', 'sentence_transformers', 'transformers') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "e.yaml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("shadow", "generalist", "message"),
    [
        (
            {"specialist": "nope"},
            True,
            r"capture.shadow.0.specialist: no specialist 'nope' \(specialists: a\)",
        ),
        ({"specialist": "a"}, False, "shadow mode needs a generalist"),
        ({"specialist": "a", "scope": "routed"}, True, "has no examples"),
        ({"specialist": "a", "scope": "generalist", "max_inflight": 2}, True, "max_inflight"),
        ({"specialist": "a", "scope": "sometimes"}, True, "scope"),
    ],
)
def test_shadow_entries_are_checked(shadow: dict[str, object], generalist: bool, message: str) -> None:
    data: dict[str, object] = {
        "specialists": [{"name": "a", "base": "smollm2-135m"}],
        "server": {"fallback": "error"},
        "capture": {"shadow": [shadow]},
    }
    if generalist:
        data["generalist"] = {"model": "smollm2-135m"}
    with pytest.raises(ConfigError, match=message):
        parse_ecosystem(data)
    good = {
        **data,
        "generalist": {"model": "smollm2-135m"},
        "capture": {"shadow": [{"specialist": "a", "scope": "generalist"}]},
    }
    spec = parse_ecosystem(good)
    assert spec.capture is not None and spec.capture.shadowed("a") is not None
    assert spec.capture.shadowed("b") is None
