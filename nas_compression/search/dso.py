"""DSO-NAS: direct sparse optimisation of the edge scaling factors of completely connected blocks.

Objective: mean loss + delta ||W||^2 + gamma ||lambda||_1. The weights W take Nesterov-SGD steps on one half of the
training data; lambda takes accelerated-proximal-gradient (APG-NAG) steps on the other half, alternating. Soft
thresholding sets lambdas exactly to zero; every ``prune_every`` steps the network is rebuilt without the zero edges
and the operations they isolate. The budget-aware variant scales gamma per block by its share of the FLOPs (or of the
measured ONNX Runtime latency), so expensive blocks are pushed harder. The pruned architecture is retrained from
scratch and is an ordinary network that exports to ONNX (``supernet.deploy``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ..evaluate.classify import ClassifyData, accuracy
from ..supernet.distributed import DistContext, unwrap
from ..supernet.dso_net import DSOArch, DSONet, lambda_modules, pruned_arch, rebuild, weight_parameters
from ..supernet.train import batches, halves, loss_on, retrain, steps_for, subset, weight_optimizer

log = logging.getLogger(__name__)
BUDGET_MODES = ("none", "flops", "latency")


def soft_threshold(z: torch.Tensor, a: float) -> torch.Tensor:
    """S_a(z) = sign(z) * max(|z| - a, 0): the proximal operator of a * ||.||_1."""
    return torch.sign(z) * torch.clamp(z.abs() - a, min=0.0)


def apg_nag_step(
    lam: torch.Tensor,
    grad: torch.Tensor,
    velocity: torch.Tensor,
    lr: float,
    gamma: float | torch.Tensor,
    momentum: float = 0.9,
    nonnegative: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APG-NAG step (Sparse Structure Selection): returns (new lambda, new velocity).

    z = lambda - lr * grad;  v <- S_{lr*gamma}(z) - lambda + momentum * v;  lambda <- S_{lr*gamma}(z) + momentum * v.
    ``nonnegative`` projects lambda onto >= 0 afterwards (DSO-NAS keeps the factors non-negative), which also makes
    the zeros exact once the momentum would carry a factor below zero.
    """
    prox = soft_threshold(lam - lr * grad, lr * gamma)
    v = prox - lam + momentum * velocity
    new = prox + momentum * v
    if nonnegative:
        new = new.clamp_min(0.0)
    return new, v


@dataclass(frozen=True)
class DSOConfig:
    channels: int = 8
    levels: int = 2  # M
    stages: int = 2
    blocks_per_stage: int = 1
    batch_size: int = 64
    pretrain_epochs: float = 1.0
    search_epochs: float = 2.0  # over each data half
    retrain_epochs: float = 2.0
    lr: float = 0.05
    weight_decay: float = 1e-4  # delta
    lam_lr: float = 0.1
    gamma: float = 0.05  # the paper uses 0.001 (CIFAR) / 0.01 (ImageNet) over hundreds of epochs
    momentum: float = 0.9
    prune_every: int = 20  # search steps between rebuilds
    budget: str = "none"  # none | flops | latency
    train_subset: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget not in BUDGET_MODES:
            raise ValueError(f"budget must be one of {BUDGET_MODES}")
        if self.gamma < 0 or self.lam_lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError("need gamma >= 0, lam_lr > 0 and 0 <= momentum < 1")


@dataclass
class DSOResult:
    arch: DSOArch
    model: nn.Module  # the pruned architecture retrained from scratch (float, eval mode)
    accuracy: float  # of that model on the validation images
    history: list[dict] = field(default_factory=list)  # per rebuild: step, nonzero lambdas, edges, ops, params
    search_seconds: float = 0.0
    retrain_seconds: float = 0.0
    train_epochs: float = 0.0  # epochs over the training set spent searching (pretrain + search)


def _count_macs(conv: nn.Conv2d, args: tuple, out: torch.Tensor, macs: dict, owner: int) -> None:
    """Forward hook: multiply-adds of one conv call per sample."""
    macs[owner] += out[0].numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]


def _cost_per_module(
    model: nn.Module, x: torch.Tensor, mode: str, run: Callable[[], object] | None = None
) -> list[float]:
    """FLOPs (conv multiply-adds) or measured ONNX Runtime latency of every lambda-carrying module.

    ``run`` performs one single-sample forward of ``model`` (default: ``model(x[:1])``; the planner passes its
    camera/LiDAR/status/noise inputs).
    """
    mods = lambda_modules(model)
    inputs: dict[int, torch.Tensor] = {}

    def keep_input(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        inputs.setdefault(id(m), args[0].detach())

    hooks = [m.register_forward_hook(keep_input) for m in mods]
    macs = {id(m): 0.0 for m in mods}
    conv_hooks = []
    for m in mods:
        for conv in m.modules():
            if isinstance(conv, nn.Conv2d):
                conv_hooks.append(conv.register_forward_hook(partial(_count_macs, macs=macs, owner=id(m))))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        run() if run is not None else model(x[:1])
    for h in hooks + conv_hooks:
        h.remove()
    model.train(was_training)
    if mode == "flops":
        return [macs[id(m)] for m in mods]
    return [_latency_ms(m, inputs[id(m)]) for m in mods]


def _latency_ms(module: nn.Module, x: torch.Tensor) -> float:
    import copy
    import warnings

    from ..evaluate.latency import TimingConfig, time_onnx

    m = copy.deepcopy(module).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "block.onnx"
        torch.onnx.export(m, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=18, dynamo=False)
        return time_onnx(path, {"x": x.numpy()}, TimingConfig(repeats=20))


def block_gammas(
    model: nn.Module, x: torch.Tensor | None, gamma: float, mode: str, run: Callable[[], object] | None = None
) -> list[float]:
    """gamma per lambda-carrying module: uniform, or gamma * n * (its share of FLOPs / latency) (mean stays gamma)."""
    mods = lambda_modules(model)
    if mode == "none":
        return [gamma] * len(mods)
    cost = _cost_per_module(model, x, mode, run)
    total = sum(cost) or 1.0
    return [gamma * len(mods) * c / total for c in cost]


def _snapshot(model: DSONet, step: int) -> dict:
    lams = torch.cat([m.lam.detach() for m in lambda_modules(model)])
    return {
        "step": step,
        "edges": model.arch.num_edges(),
        "nonzero_lambdas": int((lams != 0).sum()),
        "ops": model.arch.num_ops(),
        "params": sum(p.numel() for p in weight_parameters(model)),
    }


def lambda_gradients(model: DSONet, data: ClassifyData, idx: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """d loss / d lambda on this rank's shard, averaged over the ranks (the lambda step of the alternation).

    Runs on the unwrapped model: DDP's reducer expects a ``.backward()``, so the average is an explicit all-reduce.
    """
    loss = loss_on(model, data, idx, ctx)
    grads = list(torch.autograd.grad(loss, [m.lam for m in lambda_modules(model)]))
    if ctx.enabled:
        for g in grads:
            torch.distributed.all_reduce(g)
            g /= ctx.world_size
    return grads


def run_dso(
    data: ClassifyData,
    cfg: DSOConfig,
    ctx: DistContext | None = None,
    progress: bool = True,
) -> DSOResult:
    """Pre-train the complete supernet, search lambda with APG (pruning as it goes), retrain the result from scratch."""
    from tqdm import tqdm

    ctx = ctx or DistContext()
    data = subset(data, cfg.train_subset)
    torch.manual_seed(cfg.seed)
    model = DSONet(
        DSOArch.complete(
            data.x_train.shape[1], data.image_size, cfg.channels, cfg.levels, cfg.stages, cfg.blocks_per_stage
        )
    )
    n = len(data.x_train)
    t0 = time.perf_counter()
    # 1. pre-train the weights of the complete block (lambda fixed at 1)
    net = ctx.wrap(model)
    pre_steps = steps_for(cfg.pretrain_epochs, n, cfg.batch_size)
    opt, sched = weight_optimizer(weight_parameters(model), cfg.lr, cfg.weight_decay, pre_steps)
    stream = batches(torch.arange(n), cfg.batch_size, cfg.seed)
    net.train()
    for _ in tqdm(range(pre_steps), desc="DSO pre-train", disable=not (progress and ctx.is_main)):
        loss = loss_on(net, data, next(stream), ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    # 2. search: W on half A, lambda (APG) on half B, rebuild without zero edges every prune_every steps
    half_w, half_a = halves(n, cfg.seed)
    steps = steps_for(cfg.search_epochs, len(half_w), cfg.batch_size)
    stream_w = batches(half_w, cfg.batch_size, cfg.seed + 1)
    stream_a = batches(half_a, cfg.batch_size, cfg.seed + 2)
    gammas = block_gammas(model, data.x_train, cfg.gamma, cfg.budget)
    opt, _ = weight_optimizer(weight_parameters(model), cfg.lr * 0.5, cfg.weight_decay, steps)
    history = [_snapshot(model, 0)]
    bar = tqdm(range(1, steps + 1), desc="DSO search", disable=not (progress and ctx.is_main))
    for step in bar:
        loss = loss_on(net, data, next(stream_w), ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        mods = lambda_modules(model)
        grads = lambda_gradients(model, data, next(stream_a), ctx)
        with torch.no_grad():
            for m, g, gamma in zip(mods, grads, gammas):
                new, v = apg_nag_step(m.lam, g, m.lam_v, cfg.lam_lr, gamma, cfg.momentum)
                m.lam.copy_(new)
                m.lam_v.copy_(v)
        if step % cfg.prune_every == 0 or step == steps:
            arch = pruned_arch(model)
            if arch != model.arch:
                model = rebuild(model, arch)
                net = ctx.wrap(model)
                net.train()
                opt, _ = weight_optimizer(weight_parameters(model), cfg.lr * 0.5, cfg.weight_decay, steps)
            history.append(_snapshot(model, step))
            bar.set_postfix(edges=history[-1]["edges"], nonzero=history[-1]["nonzero_lambdas"])
    final_arch = pruned_arch(unwrap(model))
    search_s = time.perf_counter() - t0
    # 3. retrain the pruned architecture from scratch (no lambda: plain sums)
    t1 = time.perf_counter()
    torch.manual_seed(cfg.seed + 7)
    final = retrain(
        DSONet(final_arch, searchable=False), data, cfg.retrain_epochs, cfg.lr, cfg.batch_size, cfg.seed + 3, ctx
    )
    return DSOResult(
        final_arch,
        final,
        accuracy(final, data.x_val, data.y_val),
        history,
        search_s,
        time.perf_counter() - t1,
        cfg.pretrain_epochs + cfg.search_epochs,
    )


def config_dict(cfg: DSOConfig) -> dict:
    return asdict(cfg)
