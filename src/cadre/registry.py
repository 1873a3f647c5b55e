"""Name -> implementation registries for the extension points (backends, routers, metrics, ...).

Built-ins register a lazy "module:attr" path so that ``import cadre`` stays cheap; third-party packages add
entries through the entry-point group ``cadre.<family>`` in their own packaging metadata.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from cadre.errors import ConfigError, did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of one family of implementations, looked up by name."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, T | str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, impl: T | str, *, replace: bool = False) -> None:
        """Register ``impl`` (an object, or a lazy ``"module:attr"`` path) under ``name``."""
        if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
            raise ConfigError(f"invalid {self.family} name {name!r}: use letters, digits, '-', '_' or '.'")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.family} {name!r} is already registered")
        self._entries[name] = impl

    def decorator(self, name: str) -> Callable[[T], T]:
        """Use as ``@registry.decorator("name")`` on a class or function."""

        def wrap(obj: T) -> T:
            self.register(name, obj)
            return obj

        return wrap

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=f"cadre.{self.family}"):
            self._entries.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._entries:
            raise did_you_mean(name, self._entries, kind=self.family.rstrip("s"))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
            self._entries[name] = obj
            return obj  # type: ignore[no-any-return]
        return entry

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries
