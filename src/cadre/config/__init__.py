"""Typed, validated specs. Every spec is a pydantic model that rejects unknown keys."""

from cadre.config.base import StrictModel, load_spec, parse_spec

__all__ = ["StrictModel", "load_spec", "parse_spec"]
