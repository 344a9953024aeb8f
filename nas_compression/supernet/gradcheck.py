"""Check that DDP gradients equal single-process gradients for the supernets (run under ``torchrun``).

torchrun --standalone --nproc_per_node 2 -m nas_compression.supernet.gradcheck --out ddp.pt
python -m nas_compression.supernet.gradcheck --out single.pt    # then compare the two files

Each rank computes the loss on its half of one fixed global batch; DDP (or the explicit all-reduce of DSO's lambda
step) averages the gradients, which must equal the full-batch gradient of one process. BatchNorm runs on its running
statistics here: per-rank batch statistics differ from full-batch ones by construction (standard DDP without
SyncBatchNorm), which is a property of data parallelism, not a gradient error.
"""

from __future__ import annotations

import argparse

import torch

from ..evaluate.classify import load_dataset
from ..search.dso import lambda_gradients
from .distributed import DistContext, init_from_env, shutdown, unwrap
from .dso_net import DSOArch, DSONet
from .egs_net import EGSArch, EGSNet
from .train import loss_on


def _bn_eval(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def supernet_gradients(ctx: DistContext, batch: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gradients of every DSO and EGS supernet parameter (weights, lambda, alpha) for one fixed global batch."""
    data = load_dataset("digits")
    idx = torch.arange(batch)
    out = {}
    torch.manual_seed(seed)
    dso = DSONet(DSOArch.complete(1, data.image_size, 4, 2))
    torch.manual_seed(seed)
    egs = EGSNet(EGSArch(1, data.image_size, 4, 2, 2, 2), seed=seed)
    for name, model in (("dso", dso), ("egs", egs)):
        net = ctx.wrap(model)
        net.train()
        _bn_eval(net)
        if name == "egs":
            model.tau = 2.0
            model.reseed(seed)
        loss_on(net, data, idx, ctx).backward()
        out.update({f"{name}.{k}": p.grad.detach().clone() for k, p in unwrap(net).named_parameters()})
        if name == "dso":  # the lambda step's own path (explicit all-reduce)
            for i, g in enumerate(lambda_gradients(model, data, idx, ctx)):
                out[f"dso.lambda_step.{i}"] = g.detach().clone()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ctx = init_from_env()
    grads = supernet_gradients(ctx)
    if ctx.is_main:
        torch.save(grads, args.out)
    shutdown(ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
