"""Command-line options generated from a pydantic spec, so the spec's fields define each flag once.

Each leaf field becomes ``--field-name`` (nested models are flattened to their leaf names), typed from the
field's annotation, with the field's description and default as help. Every option defaults to ``None`` so
that only the flags actually given override a YAML file read as the same spec.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["SpecOption", "set_field", "spec_options", "with_options"]

F = TypeVar("F", bound=Callable[..., Any])

_SCALARS = (bool, int, float, str, Path)


@dataclass(frozen=True)
class SpecOption:
    """One generated option: its parameter name (``--name-with-dashes``) and the field path it sets."""

    name: str
    path: str
    cli_type: type
    help: str
    is_list: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parameter(self) -> inspect.Parameter:
        decl = f"{self.flag}/--no-{self.flag[2:]}" if self.cli_type is bool else self.flag
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, decl, help=self.help),
            annotation=self.cli_type | None,
        )

    def parse(self, value: Any) -> Any:
        """The flag's value as the field expects it (lists are given comma-separated)."""
        if self.is_list:
            return [item.strip() for item in str(value).split(",") if item.strip()]
        return value


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _help(field: FieldInfo, choices: tuple[Any, ...] | None) -> str:
    notes = [" | ".join(str(c) for c in choices)] if choices else []
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    if field.is_required():
        notes.append("required")
    elif isinstance(default, bool):
        notes.append(f"default: {'on' if default else 'off'}")
    elif isinstance(default, list):
        notes.append("default: " + ",".join(str(d) for d in default))
    elif default is not None:
        notes.append(f"default: {default}")
    text = field.description or ""
    return f"{text} ({'; '.join(notes)})".strip() if notes else text


def spec_options(
    spec: type[BaseModel], *, renames: Mapping[str, str] | None = None, prefix: str = ""
) -> list[SpecOption]:
    """One option per leaf field of ``spec``, in field order; ``renames`` maps a field path to a flag name."""
    renames = renames or {}
    options: list[SpecOption] = []
    for name, field in spec.model_fields.items():
        path = prefix + name
        annotation = _without_none(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            options += spec_options(annotation, renames=renames, prefix=f"{path}.")
            continue
        choices = get_args(annotation) if get_origin(annotation) is Literal else None
        is_list = get_origin(annotation) is list
        if choices or is_list:
            cli_type: type = str
        elif annotation in _SCALARS:
            cli_type = annotation
        else:
            raise TypeError(f"{spec.__name__}.{name}: no command-line form for {field.annotation!r}")
        options.append(SpecOption(renames.get(path, name), path, cli_type, _help(field, choices), is_list))
    return options


def with_options(
    func: F, options: list[SpecOption], *, before: Sequence[str] = (), after: Sequence[str] = ()
) -> F:
    """Give ``func`` (which takes ``**kwargs`` for the options) a signature Typer reads as its parameters.

    ``before`` and ``after`` name ``func``'s own parameters placed around the generated ones.
    """
    own = inspect.signature(func).parameters
    params = [own[n].replace(kind=inspect.Parameter.KEYWORD_ONLY) for n in before]
    params += [o.parameter() for o in options]
    params += [own[n].replace(kind=inspect.Parameter.KEYWORD_ONLY) for n in after]
    target = cast(Any, func)
    target.__signature__ = inspect.Signature(params, return_annotation=None)
    target.__annotations__ = {p.name: p.annotation for p in params}
    return func


def set_field(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at the dotted ``path`` of a nested mapping, creating the parents."""
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
