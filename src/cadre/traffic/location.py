"""Where a traffic store lives: a SQLite file, or tables in a PostgreSQL database.

``capture.store`` and every ``cadre traffic`` command take the same text:

- a file path (``traffic.db``): SQLite;
- a ``postgresql://`` (or ``postgres://``) URL, optionally with ``?table_prefix=NAME`` (default ``traffic_``) so
  that several stores can share one database: tables ``<prefix>requests``, ``<prefix>shadow``...;
- ``env:NAME``: the PostgreSQL connection string is read from the environment variable ``NAME`` when the store
  is opened (a URL as above, or libpq's ``host=... dbname=...`` form), so the password stays out of
  ecosystem.yaml. ``env:CADRE_PG_DSN`` is the variable the pgvector knowledge store reads too.

A connection string may hold a password: only :attr:`PostgresLocation.label` (password-free) is ever printed or
logged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cadre.errors import ConfigError

__all__ = [
    "DEFAULT_TABLE_PREFIX",
    "PostgresLocation",
    "StoreLocation",
    "describe_store",
    "is_postgres",
    "parse_location",
]

DEFAULT_TABLE_PREFIX = "traffic_"
_SCHEMES = ("postgresql://", "postgres://")
_ENV = "env:"
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")  # the pgvector store's table-name rule
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PostgresLocation:
    """A traffic store in PostgreSQL. ``dsn`` may hold a password: print :attr:`label`, never ``dsn``."""

    dsn: str = field(repr=False)
    table_prefix: str = DEFAULT_TABLE_PREFIX
    label: str = "postgresql"

    def __str__(self) -> str:
        return self.label

    def scrub(self, text: str) -> str:
        """``text`` (a driver's error message) with this location's password replaced by ``***``."""
        password = _conninfo(self.dsn).get("password")
        return text.replace(password, "***") if password else text


StoreLocation = Path | PostgresLocation


def is_postgres(text: str | Path) -> bool:
    """Whether ``text`` names a PostgreSQL store (a ``postgresql://`` URL or ``env:NAME``)."""
    return isinstance(text, str) and (text.startswith(_SCHEMES) or text.startswith(_ENV))


def parse_location(store: str | Path | PostgresLocation) -> StoreLocation:
    """The store ``store`` names: a file path (as given), or a PostgreSQL store.

    Raises:
        ConfigError: a malformed PostgreSQL URL or table prefix, or an ``env:`` variable that is unset.
    """
    if isinstance(store, PostgresLocation):
        return store
    if not is_postgres(store):
        return Path(store)
    text = str(store)
    if text.startswith(_ENV):
        name = text[len(_ENV) :]
        check_env_name(name)
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"traffic store {text!r}: the environment variable {name} is not set; export it with the "
                "PostgreSQL connection string, e.g. postgresql://USER@HOST:5432/DB"
            )
        if value.startswith(_SCHEMES):
            loc = _from_url(value)
            return PostgresLocation(loc.dsn, loc.table_prefix, f"{loc.label} (from ${name})")
        return PostgresLocation(value, DEFAULT_TABLE_PREFIX, f"{_label(value)} (from ${name})")
    return _from_url(text)


def check_env_name(name: str) -> None:
    if not _ENV_NAME.match(name):
        raise ConfigError(f"traffic store 'env:{name}': name an environment variable, e.g. env:CADRE_PG_DSN")


def check_store(text: str) -> None:
    """Validate a store's text without connecting or reading the environment: a ``postgresql://`` URL (its table
    prefix included) or ``env:NAME``; a file path passes.

    Raises:
        ConfigError: a malformed URL, table prefix or variable name.
    """
    if text.startswith(_ENV):
        check_env_name(text[len(_ENV) :])
    elif text.startswith(_SCHEMES):
        _from_url(text)


def describe_store(store: str | Path | PostgresLocation) -> str:
    """``store`` as it may be printed: a file path as is, a PostgreSQL store without its password."""
    if not isinstance(store, PostgresLocation) and not is_postgres(store):
        return str(store)
    try:
        return str(parse_location(store))
    except ConfigError:
        return str(store).split("@")[-1]


def _from_url(text: str) -> PostgresLocation:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as err:
        raise ConfigError(f"traffic store URL {_label(text)!r} is malformed ({err})") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [v for k, v in query if k == "table_prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_TABLE_PREFIX
    if not _PREFIX.match(prefix):
        raise ConfigError(
            f"table_prefix {prefix!r}: use lowercase letters, digits and '_' (at most 41, not starting with a digit)"
        )
    rest = [(k, v) for k, v in query if k != "table_prefix"]
    dsn = urlunsplit(parts._replace(query=urlencode(rest)))
    label = _label(dsn)
    if prefix != DEFAULT_TABLE_PREFIX:
        label += f"{'&' if '?' in label else '?'}table_prefix={prefix}"
    return PostgresLocation(dsn, prefix, label)


def _conninfo(dsn: str) -> dict[str, str]:
    try:
        from psycopg.conninfo import conninfo_to_dict

        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:  # psycopg missing or a string libpq cannot parse: the connection will say why
        return {}


def _label(dsn: str) -> str:
    """``postgresql://user@host:port/dbname``: what the connection string points at, without its password."""
    info = _conninfo(dsn)
    if not info:
        return (
            "postgresql://" + dsn.rsplit("@", 1)[-1].split("?")[0]
            if dsn.startswith(_SCHEMES)
            else "postgresql"
        )
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host") or info.get("hostaddr") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    options = f"?options={info['options']}" if info.get("options") else ""  # e.g. -csearch_path=SCHEMA
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}{options}"
