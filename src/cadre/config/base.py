"""The base of every spec, and loading specs from YAML with errors that name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cadre.errors import ConfigError, NotFoundError

__all__ = ["StrictModel", "format_validation_error", "load_spec", "parse_spec"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A spec: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


def format_validation_error(err: ValidationError, *, source: str) -> str:
    """One line per problem, each naming the key path (``specialists.0.adapter``) and what is wrong."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (remove it or check its spelling)"
        lines.append(f"{source}: {path}: {msg}")
    return "\n".join(lines)


def parse_spec(model: type[M], data: Any, *, source: str = "spec") -> M:
    """Validate ``data`` as ``model``; raise ConfigError listing every problem at once."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source=source)) from None


def load_spec(model: type[M], path: str | Path) -> M:
    """Read a YAML (or JSON) file and validate it as ``model``."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"spec file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    return parse_spec(model, data, source=str(p))
