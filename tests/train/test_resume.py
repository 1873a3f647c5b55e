"""kill -9 in the middle of training, then --resume: the final adapter equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadre.train import TrainConfig, train
from cadre.train.checkpoint import latest_checkpoint

_CHILD = "import sys; from cadre.train import TrainConfig, train; train(TrainConfig.model_validate_json(sys.argv[1]), progress=False)"


def _config(base: Path, data: Path, out: Path) -> TrainConfig:
    # no held-out split (the final adapter is the last step's), LoRA dropout on (so the RNG state matters)
    return TrainConfig.model_validate(
        {
            "base": str(base),
            "data": str(data),
            "out": str(out),
            "eval_fraction": 0,
            "batch_size": 4,
            "max_length": 96,
            "learning_rate": 3e-3,
            "lora": {"rank": 4, "alpha": 8, "dropout": 0.1},
            "max_steps": 24,
            "save_every": 2,
            "threads": 1,
            "seed": 7,
        }
    )


def test_kill9_and_resume_equals_uninterrupted_run(tiny_base: Path, chat_data: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    interrupted = _config(tiny_base, chat_data, tmp_path / "interrupted")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, interrupted.model_dump_json()])
    try:
        deadline = time.monotonic() + 600
        while True:
            ckpt = latest_checkpoint(interrupted.out)
            if ckpt is not None and ckpt.name >= "step-00000004":
                break
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the training child ended (rc={child.returncode}) or stalled before its 2nd checkpoint"
                )
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (interrupted.out / "adapter_model.safetensors").exists(), "the child finished before the kill"
    last = latest_checkpoint(interrupted.out)
    assert last is not None and last.name < "step-00000024"
    # a kill during a checkpoint write leaves only a .tmp- directory, which resume ignores
    assert all(
        p.name.startswith(("step-", ".tmp-", ".old-")) for p in (interrupted.out / "checkpoints").iterdir()
    )

    resumed = train(interrupted, progress=False, resume=True)
    assert resumed.resumed_from == int(last.name.split("-")[1]) and resumed.steps == 24

    reference = train(_config(tiny_base, chat_data, tmp_path / "reference"), progress=False)
    a = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(reference.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert abs(a[name] - b[name]).max() <= 1e-5 + 1e-4 * abs(b[name]).max(), name
    # and training really moved the weights (the comparison is not between two untouched adapters)
    assert max(abs(b[n]).max() for n in b if "lora_B" in n) > 1e-3


def test_resume_refuses_a_changed_config(tiny_base: Path, chat_data: Path, tmp_path: Path) -> None:
    from cadre.errors import ConfigError

    cfg = _config(tiny_base, chat_data, tmp_path / "run").model_copy(update={"max_steps": 2})
    train(cfg, progress=False)
    changed = cfg.model_copy(update={"learning_rate": 1e-4})
    with pytest.raises(ConfigError, match="differs from the interrupted run in learning_rate"):
        train(changed, progress=False, resume=True)
