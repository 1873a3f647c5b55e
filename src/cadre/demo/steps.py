"""The demo's step machinery: a step runs unless its outputs are there with the same fingerprint.

Every step records its outputs, timing and note in ``<out>/manifest.json``; a step that cannot run here raises
:class:`SkipStep` with the reason, and one that fails with a :class:`~cadre.errors.CadreError` is recorded as
failed; the demo goes on either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from cadre.demo.config import DemoConfig
from cadre.demo.manifest import Manifest, StepRecord, fingerprint
from cadre.errors import CadreError

__all__ = ["SkipStep", "StepRunner", "step_done"]


class StepRunner:
    """Runs the demo's steps with fingerprints, timing, and honest skipping."""

    def __init__(self, cfg: DemoConfig, console: Console) -> None:
        self.cfg = cfg
        self.out = cfg.out
        self.console = console
        self.manifest = Manifest(self.out)
        self.fps: dict[str, str] = {}

    def rel(self, p: Path) -> str:
        return str(Path(p).resolve().relative_to(self.out.resolve()))

    @contextmanager
    def _timed(self) -> Iterator[dict[str, float]]:
        t = {"start": time.perf_counter()}
        yield t
        t["seconds"] = time.perf_counter() - t["start"]

    def step(
        self,
        name: str,
        fp_parts: Any,
        fn: Callable[[], tuple[list[Path], dict[str, Any], str]],
        *,
        depends: tuple[str, ...] = (),
        always: bool = False,
    ) -> StepRecord:
        """Run ``fn`` unless done with the same fingerprint; ``fn`` returns (outputs, data, note)."""
        fp = fingerprint(fp_parts, [self.fps.get(d, "") for d in depends])
        self.fps[name] = fp
        if not always and self.manifest.is_done(name, fp):
            rec = self.manifest.get(name)
            assert rec is not None
            self.console.print(f"[green]✓[/] {name}: reused ({rec.note or 'done earlier'})")
            return rec
        self.console.print(f"[bold]→ {name}[/]")
        with self._timed() as t:
            try:
                outputs, data, note = fn()
                status = "done"
            except SkipStep as skip:
                outputs, data, note, status = [], {}, str(skip), "skipped"
            except CadreError as err:
                outputs, data, note, status = [], {}, f"{type(err).__name__}: {err}", "failed"
        rec = StepRecord(
            name=name,
            fingerprint=fp,
            status=status,
            outputs=[self.rel(p) for p in outputs],
            seconds=round(t["seconds"], 2),
            note=note,
            data=data,
        )
        self.manifest.record(rec)
        colour = {"done": "green", "skipped": "yellow", "failed": "red"}[status]
        self.console.print(
            f"[{colour}]{status}[/] {name} in {rec.seconds:.1f} s" + (f": {note}" if note else "")
        )
        return rec


class SkipStep(Exception):
    """A step cannot run here (a part of cadre is missing, or an earlier step failed); the message says why."""


def step_done(r: StepRunner, step: str) -> bool:
    """True when ``step`` finished (not skipped, not failed)."""
    rec = r.manifest.get(step)
    return rec is not None and rec.status == "done"
