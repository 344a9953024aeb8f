"""Process-group setup for ``torchrun``: one training process per device, only rank 0 writes files.

Without torchrun's environment (RANK / WORLD_SIZE / LOCAL_RANK) training runs as a single process with the same code
path (world size 1, no process group). The trainer and the NAS supernet searches share this context: each rank holds
the whole network and its rows of every global batch (:func:`rank_slice`), DDP averages the gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` on this rank's device, DDP-wrapped (gradients all-reduced in backward) when distributed."""
        module = module.to(self.device)
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def rank_slice(batch: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's rows of a global batch: DistributedSampler deals global positions rank, rank + W, ..."""
    if len(batch) % ctx.world_size:
        raise ValueError(f"global batch {len(batch)} does not split evenly over {ctx.world_size} processes")
    return batch[ctx.rank :: ctx.world_size]


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return all(k in env for k in TORCHRUN_VARIABLES)


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``cpu``, or ``cuda`` (the local rank's GPU); raises when CUDA is asked for and absent."""
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was given but CUDA is not available")
        return torch.device("cuda", local_rank if device == "cuda" else torch.device(device).index or 0)
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def setup_distributed(device: str = "cpu") -> DistContext:
    """Init the process group under torchrun (gloo on CPU, nccl on CUDA); a single-process context otherwise."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device))
    rank, world, local = (int(os.environ[k]) for k in TORCHRUN_VARIABLES)
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistContext(rank, world, local, dev)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.barrier()  # no rank tears the group down while a peer still has traffic in flight
        dist.destroy_process_group()
