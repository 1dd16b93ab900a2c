"""Data-parallel training without DDP: process group, all-gather with gradient, gradient all-reduce (SPEC 1.12).

The launchers (``torchrun``, ``accelerate launch``) start one process per device and describe the
group in environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``); :func:`process_group` joins it (gloo on CPU, NCCL on GPU). Without those
variables every function here is the single-process identity, so the trainer has no branches.

Why not DDP: DDP all-reduces gradients inside every backward, and GradCache runs one backward
per chunk. Here gradients are summed once per optimizer step (:func:`all_reduce_gradients`),
after accumulation and GradCache and before clipping. The loss of each process is its share of
the global-batch mean (``sgpt.train.losses.mnrl_global``), so summed gradients are exactly the
single-process gradient of the whole global batch, also for unequal local batches.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from typing import cast

import torch
import torch.distributed as dist
from torch import Tensor, nn


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the process that writes checkpoints, logs and evaluation files.

    Outside a process group (before or after ``fit``) the launcher's ``RANK`` decides, so
    code around training can keep its I/O on one process too.
    """
    return rank() == 0 if is_distributed() else os.environ.get("RANK", "0") == "0"


def training_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


@contextlib.contextmanager
def process_group(timeout_s: float = 1800.0) -> Iterator[None]:
    """Join the process group that the environment describes (``WORLD_SIZE > 1``) for the block.

    gloo on CPU, NCCL on GPU (``cuda:LOCAL_RANK``). A group created here is destroyed on exit,
    also on error: a gloo process that exits with its group alive aborts about half the time
    ("terminate called without an active exception"). A group that already exists (the caller
    made it) is used and left alone. Without launcher variables this does nothing.
    """
    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        timeout = datetime.timedelta(seconds=timeout_s)
        if torch.cuda.is_available():
            device = training_device()
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", timeout=timeout, device_id=device)
        else:
            dist.init_process_group("gloo", timeout=timeout)
        created = True
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def local_sizes(n: int, device: torch.device) -> list[int]:
    """Every process's local batch size, in rank order (``[n]`` in a single process)."""
    if not is_distributed():
        return [n]
    mine = torch.tensor([n], dtype=torch.long, device=device)
    every = [torch.zeros_like(mine) for _ in range(world_size())]
    dist.all_gather(every, mine)
    return [int(t.item()) for t in every]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather of ``[n_r, ...]`` tensors of unequal ``n_r``; backward sums over ranks and keeps this rank's rows."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int]) -> Tensor:
        ctx.sizes = sizes
        padded = x.new_zeros((max(sizes), *x.shape[1:]))  # gloo/NCCL all_gather needs equal shapes
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=False)])  # [sum(sizes), ...]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        # Every rank's loss reads every rank's rows: this rank's gradient is the sum over ranks
        # of their gradients for its rows. No rescaling here: the loss is already each rank's
        # share of the global mean (sgpt.train.losses.mnrl_global).
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: dist.get_rank()])
        return grad[start : start + ctx.sizes[dist.get_rank()]], None


def gather_with_grad(x: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
    """Concatenate ``x`` of every process in rank order, keeping the autograd edge to this rank's rows.

    Args:
        x: ``[n_r, ...]`` on this rank; the trailing shape and dtype must match across ranks.
        sizes: every rank's ``n_r`` (from :func:`local_sizes`); gathered here when omitted.

    Returns:
        ``[sum_r n_r, ...]``; the gradient of this rank's rows, summed over all ranks' losses,
        flows back into ``x``. The identity in a single process.
    """
    if not is_distributed():
        return x
    sizes = list(sizes) if sizes is not None else local_sizes(x.shape[0], x.device)
    # Plain dist.all_gather returns leaves (no gradient to anyone); the Function below carries
    # the gradient of every gathered row back to the rank that owns it.
    return _GatherWithGrad.apply(x.contiguous(), sizes)


def all_reduce_gradients(params: Sequence[nn.Parameter], bucket_numel: int = 1 << 25) -> None:
    """Sum the ``.grad`` of ``params`` over all processes, in place: call once per optimizer step.

    Gradients are flattened into buckets of at most ``bucket_numel`` elements (per device and
    dtype), so a step costs a few large all-reduces instead of one per tensor. A parameter
    without a gradient on this rank counts as zeros. No-op in a single process.
    """
    if not is_distributed():
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    groups: dict[tuple, list[nn.Parameter]] = {}
    for p in params:
        assert p.grad is not None  # filled in just above
        groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    for members in groups.values():
        bucket: list[nn.Parameter] = []
        for p in members:
            bucket.append(p)
            if sum(q.numel() for q in bucket) >= bucket_numel:
                _all_reduce_bucket(bucket)
                bucket = []
        if bucket:
            _all_reduce_bucket(bucket)


def _all_reduce_bucket(params: list[nn.Parameter]) -> None:
    # every .grad is set: all_reduce_gradients gives a missing one zeros first
    flat = torch.cat([cast(Tensor, p.grad).reshape(-1) for p in params])  # [sum numel]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    for p, part in zip(params, flat.split([p.numel() for p in params]), strict=False):
        grad = cast(Tensor, p.grad)
        grad.copy_(part.view_as(grad))


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (as DDP does at construction)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def sum_over_processes(value: float, device: torch.device) -> float:
    """``value`` summed over all processes (``value`` itself in a single process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())
