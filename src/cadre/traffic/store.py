"""The traffic store: captured requests and answers, in one SQLite file (stdlib ``sqlite3``, WAL journal) or in
PostgreSQL tables (``capture.store: postgresql://...``; :mod:`cadre.traffic.location`).

Only redacted text is ever given to it (the recorder redacts first). In SQLite deleted rows are overwritten on disk
(``PRAGMA secure_delete``), so retention really removes what it drops; PostgreSQL has no equivalent: retention
deletes the rows and ``VACUUM`` reclaims their space (docs/flywheel.md).

Tables: ``requests`` (one captured answer each, its tool calls included), ``shadow`` (a shadowed specialist's answer to a captured
request, joined on ``request_id``), ``feedback`` (a user's label or score for a response id) and ``task_members``
(the latest ``cadre traffic tasks``). The schema version is SQLite's ``user_version`` (PostgreSQL:
``<prefix>schema_version``); an older store is migrated forward when it is opened (:data:`_MIGRATIONS`, applied
in order). The SQL and the record mapping below are the same for both databases; :mod:`cadre.traffic.backends`
connects, translates the dialect and keeps the version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cadre.errors import DataError
from cadre.traffic.backends import connect
from cadre.traffic.config import RetentionSpec
from cadre.traffic.location import PostgresLocation, parse_location

__all__ = ["SCHEMA_VERSION", "Feedback", "ShadowRecord", "TrafficRecord", "TrafficStore", "open_store"]

SCHEMA_VERSION = 2

_COLUMNS = (
    "request_id",
    "ts",
    "endpoint",
    "requested",
    "model",
    "reason",
    "score",
    "fallback",
    "messages",
    "response",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "cost",
    "redactions",
    "tool_calls",
)

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    endpoint TEXT NOT NULL,
    requested TEXT NOT NULL,
    model TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    score REAL,
    fallback INTEGER NOT NULL DEFAULT 0,
    messages TEXT NOT NULL,
    response TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    redactions TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_model ON requests (model);
CREATE TABLE IF NOT EXISTS task_members (
    record_id INTEGER PRIMARY KEY,
    task INTEGER NOT NULL
);
"""

_SHADOW_COLUMNS = (
    "request_id",
    "ts",
    "specialist",
    "response",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "cost",
    "error",
    "redactions",
)
_FEEDBACK_COLUMNS = ("request_id", "ts", "label", "score", "source", "redactions")

_SCHEMA_V2 = """
ALTER TABLE requests ADD COLUMN tool_calls TEXT NOT NULL DEFAULT '[]';
CREATE TABLE IF NOT EXISTS shadow (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    specialist TEXT NOT NULL,
    response TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    error TEXT,
    redactions TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS shadow_request ON shadow (request_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    label TEXT,
    score REAL,
    source TEXT NOT NULL DEFAULT 'api',
    redactions TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}
"""Schema version -> the script that brings the previous version to it (a new store runs them all)."""


@dataclass
class TrafficRecord:
    """One captured request and its answer (text already redacted when it comes from the store)."""

    request_id: str
    endpoint: str  # "chat" or "complete"
    requested: str  # the model the client named ("auto", a specialist, "generalist")
    model: str  # who answered
    messages: list[dict[str, Any]]  # the chat as sent (a completion's prompt as one user message)
    response: str
    ts: float = field(default_factory=time.time)
    reason: str = ""
    score: float | None = None
    fallback: bool = False
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    redactions: dict[str, int] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # the answer's calls: id, name, arguments
    id: int | None = None

    @property
    def prompt(self) -> str:
        """The last user message: what clustering and dedup look at."""
        for m in reversed(self.messages):
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                return str(m["content"])
        return ""

    @property
    def request_text(self) -> str:
        """The last user message, then the system prompts: what task discovery embeds. An application sends one
        system prompt per feature, so it says which task a request belongs to; it comes second so that a long
        one is what the embedder's length limit cuts, not the request."""
        system = [str(m["content"]) for m in self.messages if m.get("role") == "system" and m.get("content")]
        return "\n\n".join([self.prompt, *system])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ShadowRecord:
    """A shadowed specialist's answer to the captured request ``request_id`` (the generalist's answer)."""

    request_id: str
    specialist: str
    response: str
    ts: float = field(default_factory=time.time)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    error: str | None = None  # the shadow failed (timeout, backend error): no answer to compare
    redactions: dict[str, int] = field(default_factory=dict)
    id: int | None = None


@dataclass
class Feedback:
    """A user's verdict on the answer ``request_id``: a reference ``label`` (the right answer) and/or a
    ``score`` in [0, 1] (e.g. thumbs up 1, down 0)."""

    request_id: str
    label: str | None = None
    score: float | None = None
    source: str = "api"  # "api" (POST /v1/feedback) or the file it was imported from
    ts: float = field(default_factory=time.time)
    redactions: dict[str, int] = field(default_factory=dict)
    id: int | None = None


def _values(obj: Any, columns: tuple[str, ...]) -> tuple[Any, ...]:
    d = asdict(obj)
    d["redactions"] = json.dumps(d["redactions"], sort_keys=True)
    return tuple(d[c] for c in columns)


def _row(r: TrafficRecord) -> tuple[Any, ...]:
    d = asdict(r)
    d["messages"] = json.dumps(r.messages, ensure_ascii=False)
    d["redactions"] = json.dumps(r.redactions, sort_keys=True)
    d["tool_calls"] = json.dumps(r.tool_calls, ensure_ascii=False)
    d["fallback"] = int(r.fallback)
    return tuple(d[c] for c in _COLUMNS)


class TrafficStore:
    """A traffic database. Open with :func:`open_store` (or construct with ``create=True`` to make one).

    One connection per instance; use one instance per thread.
    """

    def __init__(self, path: str | Path | PostgresLocation, *, create: bool = False) -> None:
        """``path``: a SQLite file, or a PostgreSQL store (a ``postgresql://`` URL, ``env:NAME``; see
        :mod:`cadre.traffic.location`).

        Raises:
            NotFoundError: no store there (and ``create`` is False).
            StoreError: not a usable traffic store, a newer schema, or a server that cannot be reached.
            ConfigError: a malformed PostgreSQL URL, or an ``env:`` variable that is unset.
        """
        self.location = parse_location(path)
        self._db = connect(self.location, create=create)
        self.name = self._db.name
        try:
            self._db.migrate(_MIGRATIONS, SCHEMA_VERSION, create=create)
        except BaseException:
            self._db.close()
            raise

    @property
    def path(self) -> Path | None:
        """The SQLite file (None for a PostgreSQL store)."""
        return self.location if isinstance(self.location, Path) else None

    def close(self) -> None:
        self._db.close()

    @property
    def broken(self) -> bool:
        """The connection to a PostgreSQL server was lost (never for SQLite): open the store again."""
        return self._db.broken

    def __enter__(self) -> TrafficStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def insert(self, records: Iterable[TrafficRecord]) -> int:
        return self._insert("requests", _COLUMNS, [_row(r) for r in records])

    def insert_shadow(self, records: Iterable[ShadowRecord]) -> int:
        return self._insert("shadow", _SHADOW_COLUMNS, [_values(r, _SHADOW_COLUMNS) for r in records])

    def insert_feedback(self, items: Iterable[Feedback]) -> int:
        return self._insert("feedback", _FEEDBACK_COLUMNS, [_values(f, _FEEDBACK_COLUMNS) for f in items])

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> int:
        with self._db.transaction():
            self._db.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
            )
        return len(rows)

    def shadow_pairs(self, specialist: str | None = None) -> list[tuple[TrafficRecord, ShadowRecord]]:
        """Each shadow answer with the captured answer it shadowed (capture order); failed shadows included
        (``error`` set), shadows whose request retention dropped left out."""
        sql = f"SELECT id, {', '.join(_SHADOW_COLUMNS)} FROM shadow"
        args: list[Any] = []
        if specialist is not None:
            sql += " WHERE specialist = ?"
            args.append(specialist)
        shadows: dict[str, list[ShadowRecord]] = {}
        for row in self._db.execute(sql + " ORDER BY id", args):
            d = dict(zip(("id", *_SHADOW_COLUMNS), row, strict=True))
            d["redactions"] = json.loads(d["redactions"])
            rec = ShadowRecord(**d)
            shadows.setdefault(rec.request_id, []).append(rec)
        if not shadows:
            return []
        return [(r, s) for r in self.iter_records() if r.request_id in shadows for s in shadows[r.request_id]]

    def shadowed_specialists(self) -> list[str]:
        return [str(r[0]) for r in self._db.execute("SELECT DISTINCT specialist FROM shadow ORDER BY 1")]

    def feedback(self) -> dict[str, Feedback]:
        """The latest feedback per request id (a later label or score replaces an earlier one; a score-only
        item keeps an earlier label, and the other way round)."""
        out: dict[str, Feedback] = {}
        sql = f"SELECT id, {', '.join(_FEEDBACK_COLUMNS)} FROM feedback ORDER BY id"
        for row in self._db.execute(sql):
            d = dict(zip(("id", *_FEEDBACK_COLUMNS), row, strict=True))
            d["redactions"] = json.loads(d["redactions"])
            new = Feedback(**d)
            old = out.get(new.request_id)
            if old is not None:
                new.label = new.label if new.label is not None else old.label
                new.score = new.score if new.score is not None else old.score
            out[new.request_id] = new
        return out

    def prune(self, retention: RetentionSpec, *, now: float | None = None) -> int:
        """Delete what ``retention`` no longer keeps (too old, or beyond ``max_rows``); returns how many."""
        deleted = 0
        with self._db.transaction():
            if retention.max_age_days is not None:
                cutoff = (now if now is not None else time.time()) - retention.max_age_days * 86400
                deleted += self._db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
            deleted += self._db.execute(
                "DELETE FROM requests WHERE id <= (SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (retention.max_rows,),
            ).rowcount
            if deleted:
                self._db.execute("DELETE FROM task_members WHERE record_id NOT IN (SELECT id FROM requests)")
                # a shadow answer or a label outlives no longer than the request it belongs to
                for table in ("shadow", "feedback"):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE request_id NOT IN (SELECT request_id FROM requests)"
                    )
        return deleted

    def save_tasks(self, assignment: Iterable[tuple[int, int]]) -> None:
        """Replace the task of each record (``(record id, task)`` pairs) with the latest discovery's."""
        with self._db.transaction():
            self._db.execute("DELETE FROM task_members")
            self._db.executemany("INSERT INTO task_members (record_id, task) VALUES (?, ?)", list(assignment))

    def task_ids(self) -> list[int]:
        """Tasks of the latest discovery that still have records."""
        rows = self._db.execute(
            "SELECT DISTINCT t.task FROM task_members t JOIN requests r ON r.id = t.record_id ORDER BY t.task"
        )
        return [int(r[0]) for r in rows]

    def task_records(self, task: int) -> list[TrafficRecord]:
        """The records the latest ``cadre traffic tasks`` put in ``task`` (those retention kept)."""
        ids = {
            int(r[0]) for r in self._db.execute("SELECT record_id FROM task_members WHERE task = ?", (task,))
        }
        return [r for r in self.iter_records() if r.id in ids]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def records(
        self, *, models: Iterable[str] | None = None, limit: int | None = None
    ) -> list[TrafficRecord]:
        """Records in capture order (oldest first), optionally only those answered by ``models``."""
        return list(self.iter_records(models=models, limit=limit))

    def iter_records(
        self, *, models: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[TrafficRecord]:
        sql = f"SELECT id, {', '.join(_COLUMNS)} FROM requests"
        args: list[Any] = []
        wanted = list(models or [])
        if wanted:
            sql += f" WHERE model IN ({', '.join('?' * len(wanted))})"
            args += wanted
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self._db.execute(sql, args):
            d = dict(zip(("id", *_COLUMNS), row, strict=True))
            try:
                d["messages"] = json.loads(d["messages"])
                d["redactions"] = json.loads(d["redactions"])
                d["tool_calls"] = json.loads(d["tool_calls"])
            except json.JSONDecodeError as err:
                raise DataError(f"{self.name}: record {d['id']} is damaged ({err})") from None
            d["fallback"] = bool(d["fallback"])
            yield TrafficRecord(**d)


def open_store(path: str | Path | PostgresLocation) -> TrafficStore:
    """Open an existing traffic store for reading: a SQLite file, or a PostgreSQL store (``postgresql://...``,
    ``env:NAME``).

    Raises:
        NotFoundError: no store there.
        StoreError: not a traffic store of this version, or a server that cannot be reached.
        ConfigError: a malformed PostgreSQL URL, or an ``env:`` variable that is unset.
    """
    return TrafficStore(path)
