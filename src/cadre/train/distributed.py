"""Data-parallel training under ``accelerate launch``: which examples each process runs, and the few values the
processes agree on.

The loop is the same for one process and for N. Under ``accelerate launch --num_processes N`` (DDP; gloo on
CPUs, NCCL on GPUs) every process holds the whole tokenized data set and walks the same global batch order
(:func:`cadre.train.data.epoch_batches`); each optimizer step's global batch of ``batch_size`` examples is
split between the processes by :func:`rank_microbatches`, and DDP (``torch.nn.parallel``, set up by HF
``accelerate``) averages the gradients. The loss of every process is divided by the global batch's labelled-token
count and multiplied by N, so the averaged gradient is the one-process gradient of the same global batch.

What must be the same on every process is decided once and shared: the optimizer seconds of a step are rank
0's (broadcast), so a time budget stops every process at the same step; evaluation results are reduced over
the processes, so early stopping agrees; checkpoints, adapters, metrics and the model card are written by
rank 0 only. A checkpoint holds no per-process state apart from the RNG states (rank 0's under ``cpu``, the
others' under ``cpu.rank<r>``), so it resumes with any number of processes.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

from cadre.errors import ConfigError

__all__ = ["Cluster", "loss_module", "rank_microbatches", "wants_distributed"]


def wants_distributed() -> bool:
    """Whether this process was started by a multi-process launcher (``accelerate launch``, ``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_microbatches(group: Sequence[Sequence[int]], rank: int, world: int) -> list[list[int]]:
    """The micro-batches process ``rank`` of ``world`` runs for one optimizer step's ``group`` of micro-batches.

    Whole micro-batches when they divide evenly between the processes (``group[rank::world]``, so each process's
    forward pass has the configured micro-batch size); otherwise every micro-batch is cut into ``world``
    contiguous parts (length-sorted neighbours stay together) and process ``rank`` takes part ``rank`` of each.
    Every example of the group goes to exactly one process; a process may get none (a group smaller than the
    number of processes) and then runs a zero-weight pass so that DDP's gradient reduction still meets.
    """
    if world == 1:
        return [list(mb) for mb in group]
    if len(group) % world == 0:
        return [list(mb) for mb in group[rank::world]]
    mine = []
    for mb in group:
        size = math.ceil(len(mb) / world)
        part = list(mb[rank * size : (rank + 1) * size])
        if part:
            mine.append(part)
    return mine


def loss_module(model: Any, loss_fn: Any) -> Any:
    """A ``torch.nn.Module`` whose forward is ``loss_fn(batch)`` and whose parameters are ``model``'s.

    DDP reduces gradients through the wrapped module's forward; the loss reaches into the PEFT model's decoder
    and head (the head runs on labelled positions only), so the module DDP wraps is this one.
    """
    import torch

    class _Loss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: dict[str, Any]) -> tuple[Any, int]:
            result: tuple[Any, int] = loss_fn(batch)
            return result

    return _Loss()


class Cluster:
    """This process's place among the training processes, over HF ``accelerate`` (one process: no-ops).

    Args:
        device: ``cpu`` or ``cuda``, as chosen by :func:`cadre.train.loop_parts.pick_device`.
    """

    def __init__(self, device: str) -> None:
        self.accelerator: Any = None
        self.rank, self.world = 0, 1
        self.device = device
        if not wants_distributed():
            return
        try:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs
        except ImportError:  # pragma: no cover - accelerate is a dependency
            raise ConfigError("multi-process training needs HF accelerate: pip install accelerate") from None
        # broadcast_buffers=False: the rotary inv_freq buffers never change, and a buffer broadcast at each
        # forward would be a collective that processes with different micro-batch counts would not match.
        ddp = DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=False)
        self.accelerator = Accelerator(cpu=device == "cpu", kwargs_handlers=[ddp])
        mode = self.accelerator.distributed_type.value
        if mode not in ("MULTI_CPU", "MULTI_GPU", "NO"):
            raise ConfigError(
                f"cadre train runs data-parallel (DDP) only, not accelerate's {mode} mode (FSDP/DeepSpeed "
                "checkpointing is not wired; docs/train.md): use `accelerate launch --multi_gpu --num_processes N "
                "-m cadre.cli.main train ...`, or --qlora for a base too big for one GPU"
            )
        self.rank = int(self.accelerator.process_index)
        self.world = int(self.accelerator.num_processes)
        device_obj = self.accelerator.device
        self.device = "cpu" if device_obj.type == "cpu" else str(device_obj)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: Any) -> Any:
        """``module`` wrapped for data-parallel training (DDP); unchanged for one process."""
        if self.world == 1:
            return module
        return self.accelerator.prepare_model(module)

    def no_sync(self, wrapped: Any, last: bool) -> Any:
        """Context for a backward pass: gradients are reduced across processes only on the ``last`` one."""
        if self.world == 1 or last:
            return contextlib.nullcontext()
        return wrapped.no_sync()

    def backward(self, loss: Any) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over the processes."""
        if self.world == 1:
            return list(values)
        import torch

        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return [float(x) for x in t.tolist()]

    def from_main(self, values: Sequence[float]) -> list[float]:
        """Rank 0's ``values`` on every process."""
        if self.world == 1:
            return list(values)
        import torch

        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(t, src=0)
        return [float(x) for x in t.tolist()]

    def gather(self, items: list[Any]) -> list[Any]:
        """Every process's ``items`` concatenated in rank order, on every process."""
        if self.world == 1:
            return items
        import torch

        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def shard(self, n: int) -> range:
        """This process's contiguous share of ``n`` items (for evaluation)."""
        size = math.ceil(n / self.world)
        return range(min(n, self.rank * size), min(n, (self.rank + 1) * size))

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. to fill a cache), the others after it."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()
