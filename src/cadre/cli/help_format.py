"""How ``cadre --help`` reads: commands in workflow order, usage lines in click's style, no type noise on flags.

Typer lists commands in the order the modules happen to register them, writes required arguments as
``{name}`` in usage lines and shows ``<bool>`` next to every flag. The command and group classes here fix
those three things; :func:`apply_help_format` puts them on every command of an app.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["COMMAND_ORDER", "CleanHelpCommand", "CleanHelpGroup", "RootGroup", "apply_help_format"]

# The order of `cadre --help`: the workflow first (try it, size it, build it, serve it), then the tools.
# A new command goes where a user would reach for it; one missing here is listed after these, A to Z.
COMMAND_ORDER: tuple[str, ...] = (
    "demo",
    "pipeline",
    "cost",
    "data",
    "train",
    "export",
    "route",
    "index",
    "eval",
    "init",
    "check",
    "serve",
    "traffic",
    "models",
    "generate",
    "chat",
    "version",
)


class _CleanHelp:
    """Help rendering shared by commands and groups (mixed in before Typer's class)."""

    # Typer bundles its own copy of click, so parameters are told apart by click's ``param_type_name``.
    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            # A flag takes no value, so it has no type to show; an empty metavar hides Typer's "<bool>".
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] ECOSYSTEM [PATH]``: arguments upper-case, optional ones in brackets (click's style)."""
        options_metavar = getattr(self, "options_metavar", None)
        pieces = [options_metavar] if options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = (param.metavar or param.name or "arg").upper()
            piece = name if param.required else f"[{name}]"
            pieces.append(piece + ("..." if param.nargs != 1 else ""))
        if isinstance(self, TyperGroup):
            pieces.append(self.subcommand_metavar)
        return pieces


class CleanHelpCommand(_CleanHelp, TyperCommand):
    """A Typer command with the cleaned-up help."""


class CleanHelpGroup(_CleanHelp, TyperGroup):
    """A Typer group (``cadre route``, ``cadre eval``...) with the cleaned-up help; commands keep their order."""


class RootGroup(CleanHelpGroup):
    """The ``cadre`` group: its commands listed in :data:`COMMAND_ORDER`."""

    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n if n not in rank else ""))


def apply_help_format(app: typer.Typer) -> None:
    """Give every command and sub-group registered on ``app`` (recursively) the cleaned-up help classes."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):  # not a class a command chose for itself
            command.cls = CleanHelpCommand
    for group in app.registered_groups:
        group.cls = CleanHelpGroup
        sub: Any = group.typer_instance
        if sub is not None:
            apply_help_format(sub)
