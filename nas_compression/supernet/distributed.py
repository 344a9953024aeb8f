"""torch DistributedDataParallel for the supernet searches: launched by ``torchrun``, gloo on CPU and NCCL on GPU.

Every rank holds the whole supernet and a shard of each global batch; DDP averages the gradients (weights and
architecture parameters alike) in the backward pass, and every rank then takes the same optimizer / APG step, so the
replicas never diverge. Random architecture samples (Gumbel noise) are drawn from generators seeded by the step, so
all ranks sample the same architecture. Without ``torchrun`` (WORLD_SIZE unset) it is a no-op single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's equal share of a global batch of indices (the batch size must divide by the world size)."""
        if len(batch) % self.world_size:
            raise ValueError(f"global batch {len(batch)} does not split evenly over {self.world_size} processes")
        return batch[self.rank :: self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap (gradients all-reduced in backward); the plain model when single-process."""
        model = model.to(self.device)
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def init_from_env() -> DistContext:
    """Join the process group ``torchrun`` describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world, torch.device("cuda", local) if use_cuda else torch.device("cpu"))


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        # Every rank reaches this point before any tears its connections down: a rank that destroys the group
        # while a peer still has gloo traffic in flight can abort ("terminate called without an active exception").
        dist.barrier()
        dist.destroy_process_group()
