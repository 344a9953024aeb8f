"""EGS search ("DATA"): weights and architecture logits learn from the same backward pass of ensemble Gumbel samples.

Weights: SGD (cosine); architecture: Adam with betas (0.5, 0.999). The Gumbel-Softmax temperature anneals
geometrically from ``tau_start`` to ``tau_end`` over the search (the authors' code left it at 1; here the schedule is
recorded in the history so the annealing is visible). The derived cell keeps M connections per node and is retrained
from scratch; the result is an ordinary network that exports to ONNX (``supernet.deploy``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ..evaluate.classify import ClassifyData, accuracy
from ..supernet.distributed import DistContext
from ..supernet.egs_net import EGSArch, EGSNet, derive
from ..supernet.train import batches, loss_on, retrain, steps_for, subset, weight_optimizer


@dataclass(frozen=True)
class EGSConfig:
    channels: int = 8
    nodes: int = 3
    cells: int = 2
    m: int = 2  # connections per node
    batch_size: int = 64
    search_epochs: float = 3.0
    retrain_epochs: float = 2.0
    lr: float = 0.025
    weight_decay: float = 3e-4
    arch_lr: float = 3e-3  # the paper's 3e-4 assumes hundreds of epochs
    tau_start: float = 5.0
    tau_end: float = 1.0
    train_subset: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.m < 1 or self.nodes < 1 or self.cells < 1:
            raise ValueError("need m, nodes and cells >= 1")
        if not self.tau_start >= self.tau_end > 0:
            raise ValueError("need tau_start >= tau_end > 0")


def temperature(step: int, steps: int, start: float, end: float) -> float:
    """Geometric annealing: ``start`` at step 0, ``end`` at the last step."""
    if steps <= 1:
        return end
    return float(start * (end / start) ** (min(step, steps - 1) / (steps - 1)))


@dataclass
class EGSResult:
    arch: EGSArch
    model: nn.Module
    accuracy: float
    history: list[dict] = field(default_factory=list)  # per step: tau, loss
    search_seconds: float = 0.0
    retrain_seconds: float = 0.0
    train_epochs: float = 0.0


def run_egs(data: ClassifyData, cfg: EGSConfig, ctx: DistContext | None = None, progress: bool = True) -> EGSResult:
    from tqdm import tqdm

    ctx = ctx or DistContext()
    data = subset(data, cfg.train_subset)
    torch.manual_seed(cfg.seed)
    space = EGSArch(data.x_train.shape[1], data.image_size, cfg.channels, cfg.nodes, cfg.cells, cfg.m)
    model = EGSNet(space, seed=cfg.seed)
    net = ctx.wrap(model)
    n = len(data.x_train)
    steps = steps_for(cfg.search_epochs, n, cfg.batch_size)
    opt_w, sched = weight_optimizer(model.weight_parameters(), cfg.lr, cfg.weight_decay, steps)
    opt_a = torch.optim.Adam(model.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999))
    stream = batches(torch.arange(n), cfg.batch_size, cfg.seed)
    history = []
    t0 = time.perf_counter()
    net.train()
    for step in tqdm(range(steps), desc="EGS search", disable=not (progress and ctx.is_main)):
        model.tau = temperature(step, steps, cfg.tau_start, cfg.tau_end)
        model.reseed(cfg.seed * 1_000_003 + step)
        loss = loss_on(net, data, next(stream), ctx)
        opt_w.zero_grad(set_to_none=True)
        opt_a.zero_grad(set_to_none=True)
        loss.backward()  # one pass: weights and architecture logits
        opt_w.step()
        opt_a.step()
        sched.step()
        history.append({"step": step, "tau": model.tau, "loss": float(loss.detach())})
    arch = derive(model)
    search_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    torch.manual_seed(cfg.seed + 7)
    final = retrain(EGSNet(arch), data, cfg.retrain_epochs, cfg.lr * 2, cfg.batch_size, cfg.seed + 3, ctx)
    return EGSResult(
        arch,
        final,
        accuracy(final, data.x_val, data.y_val),
        history,
        search_s,
        time.perf_counter() - t1,
        cfg.search_epochs,
    )
