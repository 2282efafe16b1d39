"""Data parallelism for one training run: N processes (``torchrun``), one shard of each batch each.

Every rank draws the *global* batch from the same seeded generator (so the random stream is the
single-process one), keeps its contiguous shard, computes its losses as means over the shard,
and the gradients are averaged over ranks before each optimiser step. With equal shards that
average is the gradient of the global batch mean: the run equals one process with the same
global batch up to float summation order.

Why not ``DistributedDataParallel``: its reducer hooks do not support the double backward of
the critic's gradient penalty (``torch.autograd.grad(..., create_graph=True)`` inside the
step). Averaging explicitly after ``backward`` is the same all-reduce DDP performs, done once
per network in one flattened buffer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from dftnet.runtime.numerics import place


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # rank on this node: its GPU

    @property
    def main(self) -> bool:
        """The rank that writes checkpoints, logs and the learning curve."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's contiguous slice of a global batch (its size divisible by ``size``); None stays None."""
        if self.size == 1 or batch is None:
            return batch
        n = batch.shape[0] // self.size
        return batch[self.rank * n:(self.rank + 1) * n]


def from_env() -> World:
    """The world ``torchrun`` describes (``RANK``, ``WORLD_SIZE``); one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def device_of(world: World, device: torch.device) -> torch.device:
    """The device this process trains on: over several ranks, each rank's own GPU
    (``cuda:LOCAL_RANK``) where the device is CUDA without an index; in one process, a GPU no
    other run on this machine holds (:func:`dftnet.runtime.numerics.place`); otherwise ``device``."""
    if world.size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", world.local_rank % max(1, torch.cuda.device_count()))
    elif world.size == 1:
        device = place(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def init(world: World, device: torch.device) -> None:
    """Join the process group (gloo on the CPU, nccl on CUDA) once per process."""
    import torch.distributed as dist

    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def average_gradients(module: nn.Module, world: World) -> None:
    """Every parameter's gradient replaced by its mean over the ranks (one all-reduce)."""
    if world.size == 1:
        return
    import torch.distributed as dist

    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """``values`` averaged over the ranks (the logged losses: each rank has its shard's)."""
    if world.size == 1:
        return values
    import torch.distributed as dist

    values = values.clone()
    dist.all_reduce(values)
    return values / world.size


def barrier(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()
