"""``nas-compress gradcheck``: DDP gradients of the DSO-NAS and EGS supernets equal single-process gradients.

Run it under ``torchrun`` and without, then compare the two files. Each rank computes the loss on its half of one
fixed global batch; DDP (or the explicit all-reduce of DSO's lambda step) averages the gradients, which must equal the
full-batch gradient of one process. BatchNorm runs on its running statistics here: per-rank batch statistics differ
from full-batch ones by construction (standard DDP without SyncBatchNorm), which is a property of data parallelism,
not a gradient error.
"""

from __future__ import annotations

import torch

from diffusiondrive_ros.train.distributed import DistContext

from ..strategies.dso import lambda_gradients
from ..tasks.classify import CellLayout, ClassifyTask


def _bn_eval(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def supernet_gradients(ctx: DistContext, batch: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gradients of every DSO and EGS supernet parameter (weights, lambda, alpha) for one fixed global batch of the
    8x8 digits (small supernets: 4 channels, 2 levels / 2 nodes)."""
    task = ClassifyTask("digits", cells=CellLayout(channels=4))
    idx = torch.arange(batch)
    nets = {"dso": task.supernet("dso", seed, ctx, levels=2), "egs": task.supernet("egs", seed, ctx, nodes=2, m=2)}
    out = {}
    for name, net in nets.items():
        net.model.train()
        _bn_eval(net.model)
        if name == "egs":
            net.model.tau = 2.0
            net.model.reseed(seed)
        net.weight_loss(idx).backward()
        out.update({f"{name}.{k}": p.grad.detach().clone() for k, p in net.model.named_parameters()})
        if name == "dso":  # the lambda step's own path (explicit all-reduce)
            for i, g in enumerate(lambda_gradients(net, idx, ctx)):
                out[f"dso.lambda_step.{i}"] = g.detach().clone()
    return out
