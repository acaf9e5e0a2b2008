"""Data parallelism under ``accelerate launch`` (or ``torchrun``): which process this is, and the three collective
steps training and evaluation need.

Training keeps ``--batch-size`` as the global batch: every process takes every ``world``-th example of each batch,
the summed gradients are all-reduced, and every process takes the same optimiser step, so checkpoints are named by
the examples all processes saw together and match a one-process run. Evaluation scores every ``world``-th
question and gathers them back in order. The process group comes from ``accelerate.PartialState`` (gloo on the
CPU, nccl on GPUs); a plain ``likra`` run never creates one. torch is imported where a collective needs it: the CLI
asks ``is_main`` before any command runs, and ``likra --help`` should not wait for torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def launched() -> bool:
    """Whether a launcher started several processes (it sets ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main() -> bool:
    """The process that prints and writes files (rank 0, or the only one)."""
    return int(os.environ.get("RANK", "0")) == 0


def world() -> tuple[int, int]:
    """(rank, number of processes), joining the process group on first use when launched."""
    if not launched():
        return 0, 1
    import torch
    from accelerate import PartialState

    if torch.cuda.is_available():  # the rank's own GPU, before the process group binds to the current device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    state = PartialState(cpu=not torch.cuda.is_available())  # without cpu=True accelerate ignores CPU ranks
    return state.process_index, state.num_processes


def shard(items: Sequence[T]) -> list[T]:
    """This process's share: every ``world``-th item from its rank."""
    rank, size = world()
    return list(items[rank::size])


def gather(local: Sequence[T]) -> list[T]:
    """Every process's ``shard`` results, back in the original order (the inverse of ``shard``)."""
    size = world()[1]
    if size == 1:
        return list(local)
    import torch

    parts: list[Any] = [None] * size
    torch.distributed.all_gather_object(parts, list(local))
    out: list[T] = []
    for i in range(max(len(p) for p in parts)):
        out += [p[i] for p in parts if i < len(p)]
    return out


def all_reduce_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients over the processes (each process's loss is already divided by the global count)."""
    if world()[1] == 1:
        return
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective call instead of one per tensor
    torch.distributed.all_reduce(flat)
    at = 0
    for p, g in zip(parameters, grads, strict=True):
        p.grad = flat[at : at + g.numel()].view_as(g).to(g.dtype)
        at += g.numel()


def all_reduce_sum(value: float, device: torch.device | str = "cpu") -> float:
    """Sum a number over the processes, reduced on ``device`` (the gradients' own: NCCL refuses CPU tensors)."""
    if world()[1] == 1:
        return value
    import torch

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item())


def barrier() -> None:
    if world()[1] > 1:
        import torch

        torch.distributed.barrier()
