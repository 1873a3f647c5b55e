from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadre.cli.main import app

runner = CliRunner()


def test_models_json_lists_the_bundled_models() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"smollm2-135m", "gemma3-270m", "all-minilm-l6-v2"} <= names


def test_generate_json_fields(tiny_llama_dir: Path) -> None:
    result = runner.invoke(
        app, ["generate", "-m", str(tiny_llama_dir), "--max-tokens", "5", "--json", "--n-ctx", "256", "hello"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= {"text", "usage", "tokens_per_second", "seconds_to_first_token"}
    assert out["usage"]["prompt_tokens"] > 0 and 0 < out["usage"]["completion_tokens"] <= 5


@pytest.mark.slow
def test_generate_answers_offline_with_the_bundled_model() -> None:
    result = runner.invoke(
        app, ["generate", "-m", "smollm2-135m", "--json", "What is the capital of France?"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert "Paris" in out["text"]
    assert out["tokens_per_second"] > 0
