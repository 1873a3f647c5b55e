"""Training the specialists in a child process: its memory (torch, the models, activations) goes back to the OS
when the child exits, so the demo's own peak stays that of the models it evaluates.

One child trains the demo's specialists one after another (:class:`TrainingChild`), so the imports are paid
once. For each specialist the parent writes the training request as JSON, sends the paths of that request and
of the result on the child's stdin, and reads the result JSON back (no objects cross the process boundary); the
child exits when its stdin closes. The child's progress goes to the same terminal; when stderr is not a terminal
the parent prints a line every 30 s so a log shows the step alive.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console

from cadre import errors
from cadre.errors import CadreError

__all__ = ["TrainingChild", "child_main"]

_HEARTBEAT_S = 30.0
_POLL_S = 0.2


class TrainingChild:
    """A child process that trains and exports specialists one at a time; started on first use, ended by
    :meth:`close` (or the ``with`` block), restarted if a run killed it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TrainingChild:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before the first run and after :meth:`close`)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def train(self, config: dict[str, Any], *, resume: bool, export_to: Path, label: str) -> dict[str, Any]:
        """Train ``config`` (a ``TrainConfig`` as JSON) and export the GGUF adapter.

        Returns:
            ``{"steps", "stopped", "metrics"}`` of the training run.

        Raises:
            CadreError (the child's own class when it raised one): training or export failed.
        """
        work = Path(config["out"]).parent
        work.mkdir(parents=True, exist_ok=True)
        request = work / f".{label}.request.json"
        result = work / f".{label}.result.json"
        result.unlink(missing_ok=True)
        request.write_text(
            json.dumps({"config": config, "resume": resume, "export_to": str(export_to)}), encoding="utf-8"
        )
        try:
            proc = self._started()
            stdin: IO[bytes] = proc.stdin  # type: ignore[assignment]
            stdin.write(f"{request}\t{result}\n".encode())
            stdin.flush()
            rc = self._wait_for(result, proc, label)
            try:
                data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                raise CadreError(
                    f"training {label} stopped (exit code {rc}) without a result; see the log above"
                ) from None
        finally:
            request.unlink(missing_ok=True)
            result.unlink(missing_ok=True)
        if "error" in data:
            cls = getattr(errors, str(data.get("type")), None)
            if not (isinstance(cls, type) and issubclass(cls, CadreError)):
                cls = CadreError
            raise cls(str(data["error"]))
        return data

    def close(self) -> None:
        """End the child (it finishes the run in progress first) and wait for it."""
        if self._proc is None:
            return
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        self._proc.wait()
        self._proc = None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            code = "import sys; from cadre.demo.training import child_main; sys.exit(child_main())"
            # the child writes to stderr only: stdout may carry `cadre demo --json`'s result
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code],
                env=_child_env(),
                stdin=subprocess.PIPE,
                stdout=sys.stderr.fileno(),
            )
        return self._proc

    def _wait_for(self, result: Path, proc: subprocess.Popen[bytes], label: str) -> int | None:
        """Wait until ``result`` is written or the child exits; the child's exit code, None while it runs."""
        t0 = last = time.monotonic()
        while not result.exists():
            try:
                rc = proc.wait(timeout=_POLL_S)
                return None if result.exists() else rc
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if not self.console.is_terminal and now - last >= _HEARTBEAT_S:
                    last = now
                    self.console.print(f"{label}: training, {now - t0:.0f} s", markup=False, highlight=False)
            except KeyboardInterrupt:  # the child got the same Ctrl-C; let it stop (it checkpoints)
                proc.wait()
                raise
        return None


def _child_env() -> dict[str, str]:
    """The child's environment: library warnings and progress bars off unless ``CADRE_DEBUG`` is set."""
    env = dict(os.environ)
    if not env.get("CADRE_DEBUG"):
        env.setdefault("PYTHONWARNINGS", "ignore")
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return env


def child_main() -> int:
    """The child process: for each ``REQUEST<TAB>RESULT`` line on stdin (JSON files), train and export."""
    if not os.environ.get("CADRE_DEBUG"):
        with contextlib.suppress(ImportError):  # transformers' weight-loading bar is not ours to show
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    for line in sys.stdin:
        request, result = line.rstrip("\n").split("\t")
        _train_one(Path(request), Path(result))
        gc.collect()  # this run's model and optimizer, before the next one loads
    return 0


def _train_one(request: Path, result: Path) -> None:
    from cadre.train import TrainConfig, export_adapter, train

    spec = json.loads(request.read_text(encoding="utf-8"))
    try:
        tc = TrainConfig.model_validate(spec["config"])
        res = train(tc, progress=True, resume=bool(spec["resume"]))
        export_adapter(res.adapter_dir, "gguf-adapter", out=spec["export_to"])
        metrics = {k: v for k, v in res.metrics.items() if isinstance(v, int | float | str)}
        out: dict[str, Any] = {"steps": res.steps, "stopped": res.stopped, "metrics": metrics}
    except CadreError as err:
        out = {"error": str(err), "type": type(err).__name__}
    partial = result.with_name(result.name + ".partial")
    partial.write_text(json.dumps(out), encoding="utf-8")
    partial.replace(result)  # the parent sees the result whole or not at all
