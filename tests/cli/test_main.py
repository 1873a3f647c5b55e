"""The `cadre` console script's conventions: --version, workflow order in --help, clean usage and option help."""

from __future__ import annotations

import re
from collections.abc import Iterator

import typer
from typer.testing import CliRunner

from cadre import __version__
from cadre.cli.help_format import COMMAND_ORDER
from cadre.cli.main import app

runner = CliRunner()


def test_version_flag_and_command() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"cadre {__version__}"
    res = runner.invoke(app, ["version"])
    assert res.exit_code == 0 and res.stdout.strip() == __version__


def _listed_commands(help_text: str) -> list[str]:
    panel = help_text.split("Commands")[1]
    return re.findall(r"^│ ([a-z][a-z-]+) ", panel, flags=re.MULTILINE)


def test_help_lists_commands_in_workflow_order() -> None:
    res = runner.invoke(app, ["--help"], terminal_width=100)
    assert res.exit_code == 0, res.output
    listed = _listed_commands(res.stdout)
    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert set(listed) == registered
    known = [name for name in listed if name in COMMAND_ORDER]
    assert known == sorted(known, key=COMMAND_ORDER.index)
    # The workflow the README walks through comes first, in that order; `version` is not first.
    workflow = ["demo", "cost", "train", "export", "route", "index", "eval", "serve"]
    assert [n for n in listed if n in workflow] == workflow
    assert listed[0] == "demo" and listed[-1] == "version"


def _all_command_paths() -> Iterator[list[str]]:
    root = typer.main.get_command(app)

    def walk(cmd: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(root, [])


def test_every_help_page_is_free_of_type_noise_and_placeholders() -> None:
    pages = 0
    for path in _all_command_paths():
        res = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert res.exit_code == 0, (path, res.output)
        usage = next(line for line in res.stdout.splitlines() if "Usage:" in line)
        assert "{" not in usage, (path, usage)
        assert "<bool>" not in res.stdout, (path, res.stdout)
        pages += 1
    assert pages > 20  # the walk reached the sub-commands, not only the root


def test_usage_names_arguments_in_upper_case() -> None:
    res = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert "Usage: cadre serve [OPTIONS] ECOSYSTEM" in res.stdout
    res = runner.invoke(app, ["init", "--help"], terminal_width=200)
    assert "Usage: cadre init [OPTIONS] [PATH]" in res.stdout
    # Options that take a value keep their type; flags show none.
    res = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert re.search(r"--port\s+<int>", res.stdout)
