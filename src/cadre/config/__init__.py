"""Typed, validated specs. Every spec is a pydantic model that rejects unknown keys."""

from cadre.config.base import StrictModel, load_spec, parse_spec
from cadre.config.jsonable import to_jsonable

__all__ = ["StrictModel", "load_spec", "parse_spec", "to_jsonable"]
