"""``cadre serve``, ``cadre init`` and ``cadre check``: run, scaffold and validate an ecosystem."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from cadre.cli.output import console, print_json

__all__ = ["register"]


def serve_cmd(
    ecosystem: Annotated[Path, typer.Argument(help="the ecosystem.yaml to serve (see `cadre init`)")],
    host: Annotated[str, typer.Option(help="interface to bind; beyond localhost an API key is required")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="bearer key clients must send (also CADRE_API_KEY; comma-separate several)"
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve every specialist, the router and the generalist behind one OpenAI-compatible endpoint."""
    from cadre.serve import ApiKeys, keys_from_env, serve

    keys = ApiKeys(keys_from_env(api_key))
    keys.require_for(host)  # fail before loading any model
    console.print(
        f"cadre serve: {ecosystem} on http://{host}:{port}/v1 (auth {'on' if keys.enabled else 'off'})"
    )
    serve(ecosystem, host=host, port=port, api_keys=keys, log_level=log_level)


def init_cmd(
    path: Annotated[Path, typer.Argument(help="file to write")] = Path("ecosystem.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented example ecosystem that serves offline on the bundled models."""
    from cadre.errors import ConfigError

    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it or choose another path")
    text = files("cadre.serve").joinpath("templates/ecosystem.yaml").read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}; next: cadre check {path} && cadre serve {path}")


def check_cmd(
    ecosystem: Annotated[Path, typer.Argument(help="the ecosystem.yaml to validate")],
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Validate an ecosystem file (no model is loaded) and say what would be served."""
    from cadre.serve import check_ecosystem

    report = check_ecosystem(ecosystem)
    if json_out:
        print_json(report)
        return
    from rich.table import Table

    table = Table(title=f"{ecosystem}: valid", title_justify="left")
    for col in ("model", "kind", "base", "adapter", "router examples", "notes"):
        table.add_column(col)
    for row in report["models"]:
        table.add_row(
            row["name"],
            row["kind"],
            row["base"],
            row["adapter"],
            str(row["examples"]),
            "; ".join(row["notes"]),
        )
    console.print(table)
    console.print(f"router: {report['router']}")
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.command("serve")(serve_cmd)
    app.command("init")(init_cmd)
    app.command("check")(check_cmd)
