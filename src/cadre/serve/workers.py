"""Run generation jobs on loaded backends without blocking the event loop.

* :class:`Job` is one generation; a streamed job pushes its chunks to an asyncio queue, a plain one resolves a
  future. Either stops at the next token once cancelled (client gone, timeout).
* :class:`Worker` runs the jobs of one loaded backend from threads, concurrently: the runtime batches them.
* :class:`Admission` bounds the requests admitted at once; beyond it the server answers 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from cadre.errors import BackendError, CapacityError
from cadre.runtime.protocol import (
    Backend,
    ChatMessage,
    Completion,
    SamplingParams,
    StreamChunk,
    collect_stream,
)

__all__ = ["Admission", "Job", "Worker"]


@dataclass(eq=False)
class Job:
    """One generation: a chat (``messages``) or a plain completion (``prompt``), streamed or not."""

    kind: Literal["chat", "complete"]
    params: SamplingParams
    adapter: str | None = None
    messages: Sequence[ChatMessage] = ()
    prompt: str = ""
    stream: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    result: asyncio.Future[Completion] = field(init=False)
    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self.result = self.loop.create_future()

    @property
    def batchable(self) -> bool:
        return self.kind == "chat" and not self.stream

    def cancel(self) -> None:
        """Stop at the next token. Runs on the event loop's thread; whoever gave up no longer reads the result,
        so a late error is marked retrieved (no "Future exception was never retrieved" in the log)."""
        if not self.cancelled.is_set():
            self.result.add_done_callback(_retrieve)
        self.cancelled.set()

    def abort(self, err: BaseException) -> None:
        """End the job now with ``err`` (server shutdown): a waiter gets it, a stream gets it as its next event.

        Runs on the event loop's thread.
        """
        self.cancel()
        if self.stream:
            self.events.put_nowait(("error", err))
        elif not self.result.done():
            self.result.set_exception(err)

    # --- called from worker threads ---
    def _resolve(self, completion: Completion | None, error: BaseException | None) -> None:
        def done() -> None:
            if self.result.done():
                return
            if error is not None:
                self.result.set_exception(error)
                if self.stream:
                    self.result.exception()  # a stream reports errors as events: nobody awaits this future
            else:
                assert completion is not None
                self.result.set_result(completion)

        with contextlib.suppress(RuntimeError):  # the loop closed under us (shutdown)
            self.loop.call_soon_threadsafe(done)

    def _emit(self, kind: str, payload: Any) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _iter_stream(backend: Backend, job: Job) -> Iterator[StreamChunk]:
    if job.kind == "chat":
        return backend.stream_chat(job.messages, job.params, adapter=job.adapter)
    return backend.stream_complete(job.prompt, job.params, adapter=job.adapter)


def _run_one(backend: Backend, job: Job) -> None:
    """Generate one job on the calling thread, stopping at the next token once it is cancelled."""
    stream: Iterator[StreamChunk] | None = None
    try:
        # Inside the try: a backend may refuse the request before its first token (context length).
        stream = source = _iter_stream(backend, job)
        if job.stream:
            for chunk in source:
                if job.cancelled.is_set():
                    break
                job._emit("chunk", chunk)
            job._emit("end", None)
            return

        def until_cancelled() -> Iterator[StreamChunk]:
            for chunk in source:
                if job.cancelled.is_set():
                    return
                yield chunk

        completion = collect_stream(until_cancelled(), adapter=job.adapter)
        job._resolve(completion, None)
    except BaseException as err:
        if job.stream:
            job._emit("error", err)
        else:
            job._resolve(None, err)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


class Worker:
    """Runs jobs on one loaded backend from a thread pool, at most ``concurrency`` at once.

    The runtime's backends are thread-safe and batch internally: the llama.cpp engine decodes every running
    sequence that shares an adapter in one batch (continuous batching), so submitting same-specialist requests
    concurrently is what batches them. An HTTP backend simply runs requests in parallel.
    """

    def __init__(self, backend: Backend, *, concurrency: int, remote: bool) -> None:
        self.backend = backend
        self.remote = remote
        self.concurrency = concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cadre-gen")
        self._sem = asyncio.Semaphore(concurrency)
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def pending(self) -> int:
        return self._active

    async def submit(self, job: Job) -> None:
        if self._closed:
            raise BackendError(f"model {self.backend.name!r} is shutting down; retry")
        self._active += 1
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job) -> None:
        try:
            async with self._sem:
                if job.cancelled.is_set():
                    job._resolve(None, BackendError("cancelled before it started"))
                    job._emit("end", None)
                    return
                await asyncio.get_running_loop().run_in_executor(self._executor, _run_one, self.backend, job)
        except BaseException as err:  # the executor itself failed (shutdown): never leave a caller waiting
            job._resolve(None, err)
            job._emit("error", err)
        finally:
            self._active -= 1

    async def close(self, *, drain_s: float = 30.0) -> None:
        """Finish the jobs in progress (up to ``drain_s``), then release the model."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=drain_s)
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.backend.close)


class Admission:
    """At most ``limit`` requests admitted at once; the next one gets a CapacityError (429) with a retry hint."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._ewma_s = 1.0  # exponentially weighted mean service time, for Retry-After

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self._ewma_s))

    def acquire(self) -> float:
        """Admit one request (returns its start time) or raise CapacityError."""
        if self.active >= self.limit:
            raise CapacityError(
                f"server busy: {self.active} requests in progress (server.queue_size={self.limit}); "
                f"retry in {self.retry_after_s()} s"
            )
        self.active += 1
        return time.perf_counter()

    def release(self, started: float) -> None:
        self.active -= 1
        self._ewma_s = 0.8 * self._ewma_s + 0.2 * (time.perf_counter() - started)
