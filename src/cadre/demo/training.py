"""Training a specialist in a child process: its memory (torch, the model, activations) goes back to the OS
when the child exits, so the demo's own peak stays that of the models it evaluates.

The parent writes the training request as JSON, runs :func:`child_main` in a new interpreter with the paths
of that request and of the result, and reads the result JSON back (no objects cross the process boundary). The child's progress goes to the same
terminal; when stderr is not a terminal the parent prints a line every 30 s so a log shows the step alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from cadre import errors
from cadre.errors import CadreError

__all__ = ["child_main", "train_in_child"]

_HEARTBEAT_S = 30.0


def train_in_child(
    config: dict[str, Any], *, resume: bool, export_to: Path, label: str, console: Console
) -> dict[str, Any]:
    """Train ``config`` (a ``TrainConfig`` as JSON) and export the GGUF adapter, in a child process.

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
    code = "import sys; from cadre.demo.training import child_main; sys.exit(child_main(sys.argv[1:]))"
    # the child writes to stderr only: stdout may carry `cadre demo --json`'s result
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(request), str(result)], env=_child_env(), stdout=sys.stderr.fileno()
    )
    t0 = last = time.monotonic()
    while True:
        try:
            rc = proc.wait(timeout=5.0)
            break
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if not console.is_terminal and now - last >= _HEARTBEAT_S:
                last = now
                console.print(f"{label}: training, {now - t0:.0f} s", markup=False, highlight=False)
        except KeyboardInterrupt:  # the child got the same Ctrl-C; let it stop (it checkpoints)
            proc.wait()
            raise
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


def _child_env() -> dict[str, str]:
    """The child's environment: library warnings and progress bars off unless ``CADRE_DEBUG`` is set."""
    env = dict(os.environ)
    if not env.get("CADRE_DEBUG"):
        env.setdefault("PYTHONWARNINGS", "ignore")
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return env


def child_main(argv: list[str]) -> int:
    """The child process: ``REQUEST RESULT`` (JSON files); exit 0 when trained and exported."""
    request, result = Path(argv[0]), Path(argv[1])
    if not os.environ.get("CADRE_DEBUG"):
        with contextlib.suppress(ImportError):  # transformers' weight-loading bar is not ours to show
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    from cadre.train import TrainConfig, export_adapter, train

    spec = json.loads(request.read_text(encoding="utf-8"))
    try:
        tc = TrainConfig.model_validate(spec["config"])
        res = train(tc, progress=True, resume=bool(spec["resume"]))
        export_adapter(res.adapter_dir, "gguf-adapter", out=spec["export_to"])
        metrics = {k: v for k, v in res.metrics.items() if isinstance(v, int | float | str)}
        out: dict[str, Any] = {"steps": res.steps, "stopped": res.stopped, "metrics": metrics}
        code = 0
    except CadreError as err:
        out, code = {"error": str(err), "type": type(err).__name__}, 2
    result.write_text(json.dumps(out), encoding="utf-8")
    return code
