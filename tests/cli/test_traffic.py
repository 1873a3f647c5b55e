"""`cadre traffic ...` on a PostgreSQL capture store through the Typer app: the store argument is a URL, and
neither the output nor the action log ever shows its password."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.traffic import TrafficStore, open_store, read_actions

runner = CliRunner()


def test_feedback_into_a_postgresql_store_never_shows_the_password(
    pg_store_url: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the test server trusts loopback connections, so the password is sent and ignored: what matters is where
    # it shows up
    url = pg_store_url("cli_feedback_").replace("postgresql://cadre@", "postgresql://cadre:hunter2-pw@")
    TrafficStore(url, create=True).close()
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"response_id": "chatcmpl-1", "label": "mail jane.doe@example.com"}) + "\n")
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["traffic", "feedback", url, str(labels)])
    assert res.exit_code == 0, res.output
    assert "1 feedback items" in res.output and "postgresql://cadre@127.0.0.1" in res.output
    (line,) = read_actions(
        tmp_path / "flywheel.log"
    )  # a PostgreSQL store's steps: logged in the working folder
    assert "feedback" in line and "postgresql://cadre@127.0.0.1" in line
    assert "hunter2-pw" not in res.output + line
    monkeypatch.setenv("CADRE_TEST_CLI_DSN", url)
    res = runner.invoke(app, ["traffic", "feedback", "env:CADRE_TEST_CLI_DSN", str(labels), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["store"] == "env:CADRE_TEST_CLI_DSN" and "hunter2-pw" not in res.output
    with open_store(url) as store:
        assert store.feedback()["chatcmpl-1"].label == "mail [EMAIL]"
