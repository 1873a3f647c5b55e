"""Data-parallel training under ``accelerate launch``: two CPU processes (gloo) against one process.

The end-to-end test runs one 9-step schedule three ways and compares them step by step:

- one process, steps 1-9 (the reference);
- steps 4-6 by **two processes** under ``accelerate launch -m cadre.cli.main train --resume``, resumed from the
  one-process run's step-3 checkpoint (a checkpoint crosses from 1 process to 2);
- steps 7-9 by one process, resumed from the two-process run's step-6 checkpoint (from 2 processes to 1).

The global batch is the same (8 examples: micro-batches of 2, accumulated; each process runs two of the four
per step), so the per-step losses, the held-out evaluations and the final adapter must match the reference up
to float32 rounding: DDP averages the two processes' gradients, whose sum is the one-process gradient summed in
another order. Measured: the per-step losses agree to 6e-8 relative (float32's epsilon is 1.2e-7); the bound
is 1e-4, room for other CPUs' kernels.
LoRA dropout is 0 (each process draws its own masks, so with dropout the runs would differ by design) and the
learning rate is constant, so the plan of a run capped at 6 steps is the same as that of one capped at 9.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cadre.train import TrainConfig, train
from cadre.train.distributed import rank_microbatches

LOSS_RTOL = 1e-4  # per-step loss, relative (see the module docstring)
WEIGHT_ATOL = 1e-5  # adapter weights, absolute, on top of 1e-4 of the tensor's largest value


@pytest.mark.parametrize(
    ("group", "world"),
    [
        ([[0, 1], [2, 3], [4, 5], [6, 7]], 2),  # even: whole micro-batches per process
        ([[0, 1, 2, 3]], 2),  # one micro-batch: cut in halves
        ([[0, 1, 2], [3, 4, 5], [6, 7, 8]], 2),  # odd count: every micro-batch cut
        ([[0]], 2),  # fewer examples than processes: one process gets none
        ([[0, 1, 2], [3]], 4),
        ([[5, 6], [7]], 1),
    ],
)
def test_rank_microbatches_give_every_example_to_exactly_one_process(
    group: list[list[int]], world: int
) -> None:
    parts = [rank_microbatches(group, r, world) for r in range(world)]
    seen = sorted(i for part in parts for mb in part for i in mb)
    assert seen == sorted(i for mb in group for i in mb)
    assert all(mb for part in parts for mb in part)  # no empty micro-batch is handed out
    if world == 1:
        assert parts[0] == group
    if len(group) % world == 0:  # whole micro-batches keep the configured micro-batch size
        assert all(mb in group for part in parts for mb in part)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(base: Path, data: Path, out: Path, max_steps: int) -> dict:
    return {
        "base": str(base),
        "data": str(data),
        "out": str(out),
        "eval_fraction": 0.2,
        "eval_every": 3,
        "early_stopping_patience": None,
        "batch_size": 8,
        "micro_batch_size": 2,
        "max_length": 96,
        "learning_rate": 3e-3,
        "schedule": "constant",
        "warmup_fraction": 0,
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0},
        "max_steps": max_steps,
        "save_every": 3,
        "keep_checkpoints": 5,
        "threads": 1,
        "seed": 3,
    }


def _copy_run_until(src: Path, dst: Path, step: int) -> None:
    """A copy of run ``src`` as it was after checkpoint ``step`` (later checkpoints and final outputs removed)."""
    shutil.copytree(src, dst)
    for ckpt in (dst / "checkpoints").iterdir():
        if not ckpt.name.startswith("step-") or int(ckpt.name.split("-")[1]) > step:
            shutil.rmtree(ckpt)  # later checkpoints, and best/ and last/, which the rest of the run rewrites
    for name in ("adapter_model.safetensors", "adapter_config.json", "metrics.json", "README.md"):
        (dst / name).unlink()


def _assert_close_adapters(a_dir: Path, b_dir: Path) -> None:
    from safetensors.numpy import load_file

    a = load_file(str(a_dir / "adapter_model.safetensors"))
    b = load_file(str(b_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert abs(a[name] - b[name]).max() <= WEIGHT_ATOL + 1e-4 * abs(b[name]).max(), name
    assert max(abs(b[n]).max() for n in b if "lora_B" in n) > 1e-3  # the weights did move


@pytest.mark.slow  # starts `accelerate launch` (2 processes): 63 s on 2 cores at load average 10
def test_two_processes_follow_one_and_checkpoints_cross_process_counts(
    tiny_base: Path, chat_data: Path, tmp_path: Path
) -> None:
    pytest.importorskip("accelerate")
    reference = train(
        TrainConfig.model_validate(_config(tiny_base, chat_data, tmp_path / "one", 9)), progress=False
    )
    ref_losses = reference.metrics["train_losses"]
    assert len(ref_losses) == 9 and reference.metrics["processes"] == 1

    # steps 4-6: two processes, from the one-process run's step-3 checkpoint
    two = tmp_path / "two"
    _copy_run_until(tmp_path / "one", two, 3)
    spec = tmp_path / "two.yaml"
    spec.write_text(yaml.safe_dump(_config(tiny_base, chat_data, two, 6)), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    launcher = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(launcher),
        "launch",
        "--multi_gpu",  # the torchrun launcher; on a machine without GPUs the processes use gloo on the CPU
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "cadre.cli.main",
        "train",
        "--config",
        str(spec),
        "--resume",
        "--json",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"adapter_dir"') == 1  # only rank 0 reports
    metrics = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert metrics["processes"] == 2 and metrics["resumed_from_step"] == 3 and metrics["steps"] == 6
    assert metrics["train_losses"] == pytest.approx(ref_losses[:6], rel=LOSS_RTOL)
    # the held-out loss at steps 3 and 6: sharded over the processes, reduced, the same as one process's
    ref_evals = {h["step"]: h["eval_loss"] for h in reference.metrics["history"]}
    assert [h["step"] for h in metrics["history"]] == [3, 6]
    for h in metrics["history"]:
        assert h["eval_loss"] == pytest.approx(ref_evals[h["step"]], rel=LOSS_RTOL)
    assert (two / "checkpoints" / "step-00000006" / "state.json").is_file()
    assert not list(two.glob(".tmp-*")) and not list((two / "checkpoints").glob(".tmp-*"))

    # steps 7-9: one process again, from the two-process run's step-6 checkpoint
    three = tmp_path / "three"
    _copy_run_until(two, three, 6)
    resumed = train(
        TrainConfig.model_validate(_config(tiny_base, chat_data, three, 9)), progress=False, resume=True
    )
    assert resumed.resumed_from == 6 and resumed.steps == 9
    assert resumed.metrics["train_losses"] == pytest.approx(ref_losses, rel=LOSS_RTOL)
    assert resumed.metrics["adapter_from"] == reference.metrics["adapter_from"] == "last step (9)"
    _assert_close_adapters(three, reference.adapter_dir)
