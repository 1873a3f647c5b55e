"""The training progress display: a Rich bar (loss, tokens/s, last evaluation, ETA) and notes on stderr."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["Reporter"]


class Reporter:
    """Rich progress bar (loss, tokens/s, ETA) and one-line notes on stderr; silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    @contextlib.contextmanager
    def bar(self, total: int, done: int) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("eval {task.fields[eval]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        with self._progress:
            self._task = self._progress.add_task(
                "train", total=total, completed=done, loss="-", tps="-", eval="-"
            )
            yield
        self._progress = None

    def update(self, done: int, total: int, **fields: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, **fields)
