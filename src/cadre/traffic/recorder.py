"""The recorder the gateway captures through: it never blocks a request.

The request path only decides (model wanted? sampled?) and puts the record on a bounded queue; when the queue is
full the record is dropped and counted. One background thread takes records off the queue, redacts them, writes
them in batches and applies the retention limits. Nothing reaches the store before it is redacted.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from cadre.traffic.config import CaptureSpec
from cadre.traffic.location import PostgresLocation, StoreLocation, parse_location
from cadre.traffic.redact import Redactor
from cadre.traffic.store import Feedback, ShadowRecord, TrafficRecord, TrafficStore

__all__ = ["Recorder"]

log = logging.getLogger("cadre.traffic")

_BATCH = 256
_PRUNE_EVERY_S = 5.0
_STOP = object()

Item = TrafficRecord | ShadowRecord | Feedback
"""What the writer takes: a captured answer, a shadow's answer to one, or a user's feedback on one."""


class Recorder:
    """Captures records to the store at ``path`` (a SQLite file or a PostgreSQL store, see
    :mod:`cadre.traffic.location`) under ``spec``; :meth:`start` it, :meth:`close` it.

    Counts (``stats()``): ``written``, ``dropped`` (queue full), ``sampled_out``, ``failed`` (write errors),
    ``pruned`` (retention), and ``redactions`` per kind.
    """

    def __init__(
        self, spec: CaptureSpec, path: str | Path | PostgresLocation, *, seed: int | None = None
    ) -> None:
        self.location: StoreLocation = parse_location(path)
        self.name = str(self.location)  # where, as it may be logged (no password)
        self._spec = spec
        self._redactor = Redactor(spec.redact)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=spec.queue_size)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # guards the counters
        self.counts: Counter[str] = Counter()
        self.redactions: Counter[str] = Counter()
        self._thread: threading.Thread | None = None
        self._store: TrafficStore | None = None

    @property
    def path(self) -> Path | None:
        """The SQLite file written to (None for a PostgreSQL store)."""
        return self.location if isinstance(self.location, Path) else None

    @property
    def spec(self) -> CaptureSpec:
        return self._spec

    def start(self) -> None:
        """Open (or create) the store, so that a bad path fails at start-up, and start the writer thread."""
        self._store = TrafficStore(self.location, create=True)
        self._thread = threading.Thread(target=self._write_loop, name="cadre-capture", daemon=True)
        self._thread.start()

    def update(self, spec: CaptureSpec) -> None:
        """Apply a reloaded spec (models, sampling, redaction, retention, prices). The store file and the queue
        size stay as they were started: changing them needs a restart (logged)."""
        if spec.store != self._spec.store or spec.queue_size != self._spec.queue_size:
            log.warning("capture: a new store or queue_size takes effect at the next restart")
        self._redactor = Redactor(spec.redact)
        self._spec = spec

    def wants(self, model: str) -> bool:
        """Whether an answer by ``model`` should be captured now (model listed, and sampled in)."""
        spec = self._spec
        if not spec.wants(model):
            return False
        if spec.sample_rate < 1.0 and self._rng.random() >= spec.sample_rate:
            self._count("sampled_out")
            return False
        return True

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self._spec.prices.get(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6

    def offer(self, record: Item) -> bool:
        """Queue ``record`` (unredacted) for the writer; False (and counted as dropped) when the queue is full or
        the recorder is not running."""
        if self._thread is None:
            self._count("dropped")
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._count("dropped")
            return False
        return True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                k: self.counts.get(k, 0) for k in ("written", "dropped", "sampled_out", "failed", "pruned")
            }
            out["redactions"] = dict(self.redactions)
        out["queued"] = self._queue.qsize()
        return out

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout``), then stop the writer and close the store."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("capture: the writer did not drain in %.0f s; records still queued are lost", timeout)
        self._thread.join(timeout)
        self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- the writer thread ----------------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def _redacted(self, item: Item) -> Item:
        counts: Counter[str] = Counter()
        redactor = self._redactor
        out: Item
        if isinstance(item, TrafficRecord):
            messages = redactor.redact_messages(item.messages, counts)
            response = redactor.redact(item.response, counts)
            calls = [
                {**c, "arguments": redactor.redact(str(c.get("arguments", "")), counts)}
                for c in item.tool_calls
            ]
            out = replace(
                item, messages=messages, response=response, tool_calls=calls, redactions=dict(counts)
            )
        elif isinstance(item, ShadowRecord):
            out = replace(item, response=redactor.redact(item.response, counts), redactions=dict(counts))
        else:
            label = None if item.label is None else redactor.redact(item.label, counts)
            out = replace(item, label=label, redactions=dict(counts))
        with self._lock:
            self.redactions.update(counts)
        return out

    def _insert(self, store: TrafficStore, items: list[Item]) -> None:
        redacted = [self._redacted(i) for i in items]
        records = [r for r in redacted if isinstance(r, TrafficRecord)]
        shadows = [r for r in redacted if isinstance(r, ShadowRecord)]
        feedback = [r for r in redacted if isinstance(r, Feedback)]
        if records:
            store.insert(records)
        if shadows:
            store.insert_shadow(shadows)
        if feedback:
            store.insert_feedback(feedback)

    def _write_loop(self) -> None:
        assert self._store is not None
        store = self._store
        last_prune = 0.0
        stop = False
        while not stop:
            item = self._queue.get()
            batch = [item]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(b is _STOP for b in batch)
            records = [b for b in batch if b is not _STOP]
            try:
                if records and store.broken:  # the PostgreSQL server restarted: reconnect
                    log.warning("capture: the connection to %s was lost; reconnecting", self.name)
                    store.close()
                    store = self._store = TrafficStore(self.location, create=True)
                if records:
                    self._insert(store, records)
                    self._count("written", len(records))
                now = time.monotonic()
                if (records and now - last_prune >= _PRUNE_EVERY_S) or stop:
                    self._count("pruned", store.prune(self._spec.retention))
                    last_prune = now
            except Exception:  # a write error must not kill capture for the rest of the server's life
                log.exception("capture: writing %d records to %s failed", len(records), self.name)
                self._count("failed", len(records))
            finally:
                for _ in batch:
                    self._queue.task_done()
