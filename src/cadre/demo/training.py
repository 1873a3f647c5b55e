"""Training a specialist in a child process: its memory (torch, the model, activations) goes back to the OS
when the child exits, so the demo's own peak stays that of the models it evaluates.

The parent writes the training request as JSON, runs ``python -m cadre.demo.training REQUEST RESULT`` and
reads the result JSON back (no objects cross the process boundary). The child's progress goes to the same
terminal; when stderr is not a terminal the parent prints a line every 30 s so a log shows the step alive.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from cadre import errors
from cadre.errors import CadreError

__all__ = ["train_in_child"]

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
    proc = subprocess.Popen([sys.executable, "-m", "cadre.demo.training", str(request), str(result)])
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


def _child(request: Path, result: Path) -> int:
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


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1]), Path(sys.argv[2])))
