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
    host: Annotated[
        str, typer.Option(help="interface to bind; anything but a loopback address needs an API key")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (1-65535; 0: any free port)")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="bearer key clients must send (also CADRE_API_KEY; comma-separate several)"
        ),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            help="bearer key of the admin API, needed when server.admin is true; never the inference key "
            "(also CADRE_ADMIN_KEY)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve every specialist, the router and the generalist behind one OpenAI-compatible endpoint."""
    from cadre.serve import (
        ADMIN_ENV_VAR,
        ApiKeys,
        bind_socket,
        check_keys,
        keys_from_env,
        load_ecosystem,
        serve,
    )

    keys = ApiKeys(keys_from_env(api_key))
    admin = ApiKeys(keys_from_env(admin_key, env_var=ADMIN_ENV_VAR), kind="admin key")
    # Everything that can be wrong without a model is checked before any model loads.
    keys.require_for(host)
    check_keys(load_ecosystem(ecosystem), keys, admin)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"cadre serve: {ecosystem} on http://{shown}:{bound}/v1 (auth {'on' if keys.enabled else 'off'}, "
        f"admin {'on' if admin.enabled else 'off'})"
    )
    from cadre.evaluate import exact_agreement

    serve(
        ecosystem,
        host=host,
        port=bound,
        api_keys=keys,
        admin_keys=admin,
        log_level=log_level,
        sock=sock,
        shadow_agreement=exact_agreement,
    )


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
    for pipeline in report["pipelines"]:
        console.print(pipeline["dag"], highlight=False)
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.command("serve")(serve_cmd)
    app.command("init")(init_cmd)
    app.command("check")(check_cmd)
