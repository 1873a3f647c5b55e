"""Resumable training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a directory ``<out>/checkpoints/step-00000050/`` holding

- ``trainable.safetensors``: the trainable (LoRA) parameters by name,
- ``optimizer.safetensors`` + ``optimizer.json``: AdamW's per-parameter tensors and its param groups,
- ``rng.safetensors``: torch's CPU (and CUDA) generator states, so dropout continues identically (under
  several processes, rank r > 0's under ``<name>.rank<r>``),
- ``state.json``: step, data-order position (epoch, micro-batch), schedule length, eval history, counters.

It is written into a temporary directory and renamed into place, so a crash (kill -9) never leaves a
half-written checkpoint under a ``step-*`` name; ``latest_checkpoint`` only considers complete ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cadre.errors import ModelLoadError

__all__ = [
    "atomic_dir",
    "atomic_write_text",
    "latest_checkpoint",
    "load_checkpoint",
    "local_rng_state",
    "rng_states",
    "save_checkpoint",
]

_STEP_DIR = re.compile(r"^step-(\d{8})$")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, path)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` (atomically) when the block succeeds."""
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                _fsync_file(f)
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _optimizer_to_files(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    meta = {"param_groups": sd["param_groups"], "scalars": scalars}
    return tensors, meta


def _optimizer_from_files(tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, extra in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def local_rng_state() -> dict[str, Any]:
    """This process's torch generator states: ``cpu`` and, with CUDA, ``cuda0``, ``cuda1``, ..."""
    import torch

    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda{i}"] = s
    return rng


def rng_states(per_rank: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The RNG tensors of a checkpoint: rank 0's under their names, rank r's under ``<name>.rank<r>``
    (``per_rank`` None: this process's only)."""
    if per_rank is None:
        return local_rng_state()
    out: dict[str, Any] = {}
    for rank, states in enumerate(per_rank):
        out.update({name if rank == 0 else f"{name}.rank{rank}": t for name, t in states.items()})
    return out


def save_checkpoint(
    out: Path,
    *,
    model: Any,
    optimizer: Any,
    state: dict[str, Any],
    keep: int,
    rng: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step-<state['step']>`` under ``out/checkpoints`` and prune all but the ``keep`` newest.

    ``rng``: the generator states to store (:func:`rng_states`; default: this process's).
    """
    from safetensors.torch import save_file

    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{int(state['step']):08d}"
    trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    opt_tensors, opt_meta = _optimizer_to_files(optimizer)
    rng = {k: v.detach().cpu().contiguous() for k, v in (rng or local_rng_state()).items()}
    with atomic_dir(target) as tmp:
        save_file(trainable, str(tmp / "trainable.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta), encoding="utf-8")
        save_file(rng, str(tmp / "rng.safetensors"))
        # state.json last: its presence marks the checkpoint complete even if a rename were not atomic.
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    steps = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under ``out/checkpoints``, or None."""
    root = out / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return max(done, key=lambda p: p.name) if done else None


def load_checkpoint(path: Path, *, model: Any, optimizer: Any, rank: int = 0) -> dict[str, Any]:
    """Restore trainable weights, optimizer and RNG state from ``path``; return its ``state.json``.

    ``rank``: this process's rank; it restores that rank's RNG state, or, when the checkpoint was written by
    fewer processes, a generator seeded from the rank and the step (the data split differs then anyway).

    Raises:
        ModelLoadError: the checkpoint does not match the model (another config or base).
    """
    import torch
    from safetensors.torch import load_file

    params = dict(model.named_parameters())
    saved = load_file(str(path / "trainable.safetensors"))
    trainable = {n for n, p in params.items() if p.requires_grad}
    if set(saved) != trainable:
        raise ModelLoadError(
            f"checkpoint {path} holds other parameters than this model trains (another LoRA config or base?); "
            "resume with the original config or start a new --out"
        )
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value)
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    device = next(iter(params.values())).device
    opt_tensors = {
        k: v.to(device) if v.dim() > 0 else v
        for k, v in load_file(str(path / "optimizer.safetensors")).items()
    }
    optimizer.load_state_dict(_optimizer_from_files(opt_tensors, meta))
    state: dict[str, Any] = json.loads((path / "state.json").read_text(encoding="utf-8"))
    rng = load_file(str(path / "rng.safetensors"))
    suffix = f".rank{rank}" if rank else ""
    if f"cpu{suffix}" not in rng:
        torch.manual_seed(1_000_003 * rank + int(state["step"]))
        return state
    torch.set_rng_state(rng[f"cpu{suffix}"])
    mine = re.compile(rf"^cuda(\d+){re.escape(suffix)}$")
    cuda = sorted((int(m.group(1)), k) for k in rng if (m := mine.match(k)))
    cuda_states = [rng[k] for _, k in cuda]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return state
