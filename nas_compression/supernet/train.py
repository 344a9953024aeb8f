"""Shared training pieces of the supernet searches: batch streams, the two data halves, plain retraining."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluate.classify import ClassifyData
from .distributed import DistContext


def subset(data: ClassifyData, n: int | None) -> ClassifyData:
    """The first ``n`` training images (validation unchanged); all of them when ``n`` is None."""
    if not n:
        return data
    return ClassifyData(data.x_train[:n], data.y_train[:n], data.x_val, data.y_val)


def halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random halves of the training indices (weights learn on one, the architecture on the other)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2 :]


def batches(indices: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless reshuffled global batches of ``indices`` (identical on every rank: same seed)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = indices[torch.randperm(len(indices), generator=gen)]
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


def steps_for(epochs: float, n: int, batch_size: int) -> int:
    return max(1, int(round(epochs * n / batch_size))) if epochs > 0 else 0


def loss_on(model: nn.Module, data: ClassifyData, idx: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean cross-entropy on this rank's shard of the global batch ``idx``."""
    mine = ctx.shard(idx)
    x, y = data.x_train[mine].to(ctx.device), data.y_train[mine].to(ctx.device)
    return F.cross_entropy(model(x), y)


def weight_optimizer(params: list[nn.Parameter], lr: float, weight_decay: float, steps: int):  # noqa: ANN201
    """Nesterov SGD (the papers' weight optimizer; weight decay = delta * ||W||^2) with a cosine schedule."""
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))


def retrain(
    model: nn.Module,
    data: ClassifyData,
    epochs: float,
    lr: float,
    batch_size: int,
    seed: int,
    ctx: DistContext | None = None,
    weight_decay: float = 5e-5,
) -> nn.Module:
    """Train a derived network from scratch on all training images (DDP-aware); returns the unwrapped model."""
    from .distributed import unwrap

    ctx = ctx or DistContext()
    net = ctx.wrap(model)
    n = len(data.x_train)
    steps = steps_for(epochs, n, batch_size)
    opt, sched = weight_optimizer(list(net.parameters()), lr, weight_decay, steps)
    stream = batches(torch.arange(n), batch_size, seed)
    net.train()
    for _ in range(steps):
        loss = loss_on(net, data, next(stream), ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return unwrap(net).eval()
