"""EGS search ("DATA"): weights and architecture logits learn from the same backward pass of ensemble Gumbel samples,
on any task.

Weights: the paper's SGD (cosine) unless the task trains them otherwise (``tasks.base.Supernet``); architecture: Adam
with betas (0.5, 0.999). The Gumbel-Softmax temperature anneals geometrically from ``tau_start`` to ``tau_end`` over
the search (the authors' code left it at 1; here the schedule is recorded in the history so the annealing is
visible). The derived cell keeps M connections per node, maps to the nearest genome and, where the task retrains
cells, is retrained from scratch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from diffusiondrive_ros.train.distributed import DistContext

from ..space.cells.egs import derive
from ..tasks.base import SupernetTask, WeightPhase, index_batches
from .supernet import SupernetResult


@dataclass(frozen=True)
class EGSConfig:
    search_steps: int = 60  # training batches, each one weight and one architecture step
    retrain_steps: int = 0  # from-scratch training of the derived cells (0: none, e.g. the task retrains a genome)
    nodes: int = 3
    m: int = 2  # connections per node
    lr: float = 0.025  # the paper's SGD (the derived cells retrain at twice this rate)
    weight_decay: float = 3e-4
    arch_lr: float = 3e-3  # the paper's 3e-4 assumes hundreds of epochs
    tau_start: float = 5.0
    tau_end: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.m < 1 or self.nodes < 1 or self.search_steps < 1 or self.retrain_steps < 0:
            raise ValueError("need m, nodes and search_steps >= 1 and retrain_steps >= 0")
        if not self.tau_start >= self.tau_end > 0:
            raise ValueError("need tau_start >= tau_end > 0")


def temperature(step: int, steps: int, start: float, end: float) -> float:
    """Geometric annealing: ``start`` at step 0, ``end`` at the last step."""
    if steps <= 1:
        return end
    return float(start * (end / start) ** (min(step, steps - 1) / (steps - 1)))


def run_egs(
    task: SupernetTask, cfg: EGSConfig, ctx: DistContext | None = None, progress: bool = True
) -> SupernetResult:
    """Search the cells (one backward pass per step feeds weights and alpha), derive them, map them to the nearest
    genome and, with ``retrain_steps``, retrain the derived cells from scratch."""
    ctx = ctx or DistContext()
    net = task.supernet("egs", cfg.seed, ctx, nodes=cfg.nodes, m=cfg.m)
    steps = cfg.search_steps
    net.start_weights([WeightPhase(steps, cfg.lr, cfg.weight_decay)])
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999))
    stream = index_batches(torch.arange(net.n_train), net.batch_size, cfg.seed)
    parts = list(net.parts().values())
    history = []
    t0 = time.perf_counter()
    for step in tqdm(range(steps), desc=f"EGS {task.name} search", disable=not (progress and ctx.is_main)):
        tau = temperature(step, steps, cfg.tau_start, cfg.tau_end)
        for k, part in enumerate(parts):  # every rank draws the same Gumbel noise: the same architecture
            part.tau = tau
            part.reseed(cfg.seed * 1_000_003 + len(parts) * step + k)
        opt_a.zero_grad(set_to_none=True)
        loss = net.weight_step(next(stream), step)  # one backward: weights and alpha
        opt_a.step()
        history.append({"step": step, "tau": tau, "loss": loss})
    archs = {name: derive(part) for name, part in net.parts().items()}
    result = SupernetResult("egs", archs, task.nearest_genome(archs), history, steps, time.perf_counter() - t0)
    if cfg.retrain_steps:
        t1 = time.perf_counter()
        torch.manual_seed(cfg.seed + 7)
        result.model, result.accuracy = task.train_cells("egs", archs, cfg.retrain_steps, 2 * cfg.lr, cfg.seed + 3, ctx)
        result.retrain_seconds = time.perf_counter() - t1
    return result
