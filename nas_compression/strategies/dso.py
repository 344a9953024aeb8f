"""DSO-NAS: direct sparse optimisation of the edge scaling factors of completely connected blocks, on any task.

Objective: mean loss + delta ||W||^2 + gamma ||lambda||_1. After pre-training the complete supernet with lambda fixed
at 1, the weights W take steps on one half of the training data and lambda takes accelerated-proximal-gradient
(APG-NAG) steps on the other half, alternating. Soft thresholding sets lambdas exactly to zero; every
``prune_every`` steps the network is rebuilt without the zero edges and the operations they isolate. The budget-aware
variant scales gamma per block by its share of the FLOPs (or of the measured ONNX Runtime latency), so expensive
blocks are pushed harder. The weights follow the paper's Nesterov SGD (half the rate while searching) unless the task
trains them otherwise (``tasks.base.Supernet``). The derived cells map to the nearest genome and, where the task
retrains cells, are retrained from scratch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from tqdm import tqdm

from diffusiondrive_ros.train.distributed import DistContext

from ..measure.latency import TimingConfig, module_latency_ms
from ..space.cells.dso import lambda_modules
from ..tasks.base import Supernet, SupernetTask, WeightPhase, halves, index_batches
from .supernet import SupernetResult

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


def _count_macs(conv: nn.Conv2d, args: tuple, out: torch.Tensor, macs: dict, owner: int) -> None:
    """Forward hook: multiply-adds of one conv call per sample."""
    macs[owner] += out[0].numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]


def _cost_per_module(model: nn.Module, mode: str, run: Callable[[], object]) -> list[float]:
    """FLOPs (conv multiply-adds) or measured ONNX Runtime latency of every lambda-carrying module.

    ``run`` performs one single-sample forward of ``model``.
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
        run()
    for h in hooks + conv_hooks:
        h.remove()
    model.train(was_training)
    if mode == "flops":
        return [macs[id(m)] for m in mods]
    return [module_latency_ms(m, inputs[id(m)], TimingConfig(repeats=20)) for m in mods]


def block_gammas(model: nn.Module, gamma: float, mode: str, run: Callable[[], object]) -> list[float]:
    """gamma per lambda-carrying module: uniform, or gamma * n * (its share of FLOPs / latency) (mean stays gamma).

    ``run`` performs one single-sample forward of ``model`` (on which the FLOPs or latencies are measured)."""
    mods = lambda_modules(model)
    if mode == "none":
        return [gamma] * len(mods)
    cost = _cost_per_module(model, mode, run)
    total = sum(cost) or 1.0
    return [gamma * len(mods) * c / total for c in cost]


@dataclass(frozen=True)
class DSOConfig:
    pretrain_steps: int = 20  # weight batches with lambda fixed at 1
    search_steps: int = 40  # weight batches on one half, each followed by a lambda batch on the other
    retrain_steps: int = 0  # from-scratch training of the derived cells (0: none, e.g. the task retrains a genome)
    levels: int = 2  # M
    lr: float = 0.05  # the paper's Nesterov SGD (half of it while searching)
    weight_decay: float = 1e-4  # delta
    lam_lr: float = 0.1
    gamma: float | None = 0.05  # None: auto_gamma. The paper's 0.001 (CIFAR) / 0.01 (ImageNet) need hundreds of epochs
    momentum: float = 0.9
    prune_every: int = 20  # search steps between rebuilds
    budget: str = "none"  # none | flops | latency
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget not in BUDGET_MODES:
            raise ValueError(f"budget must be one of {BUDGET_MODES}")
        if self.pretrain_steps < 0 or self.search_steps < 1 or self.retrain_steps < 0:
            raise ValueError("need pretrain_steps >= 0, search_steps >= 1 and retrain_steps >= 0")
        if self.levels < 1 or self.prune_every < 1:
            raise ValueError("need levels >= 1 and prune_every >= 1")
        if (self.gamma is not None and self.gamma < 0) or self.lam_lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError("need gamma >= 0, lam_lr > 0 and 0 <= momentum < 1")


def split_steps(total: int) -> tuple[int, int]:
    """(pretrain_steps, search_steps) of ``total`` training batches: a third pre-training, the rest split evenly
    between weight and lambda batches."""
    if total < 3:
        raise ValueError(f"need at least 3 training batches (pre-train, weight and lambda), got {total}")
    pre = max(1, total // 3)
    return pre, max(1, (total - pre) // 2)


def auto_gamma(search_steps: int, lam_lr: float, momentum: float, pull: float = 1.5) -> float:
    """gamma whose soft threshold alone would move a lambda by ``pull`` over the search.

    With momentum the APG step shrinks an unopposed lambda by about lam_lr * gamma / (1 - momentum) per step, so a
    fixed gamma prunes everything in a long search and nothing in a short one. Here an edge survives only if the
    loss's gradient holds its lambda up against a pull of 1.5 x its initial value; for the ~100-step searches of the
    planner's proxy budget this gives gamma ~ 0.01, the paper's ImageNet value.
    """
    return pull * (1.0 - momentum) / (lam_lr * max(1, search_steps))


def lambda_gradients(net: Supernet, idx: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """d loss / d lambda on this rank's share of the global batch ``idx``, averaged over the ranks.

    Runs on the unwrapped network: DDP's reducer expects a ``.backward()``, so the average is an explicit all-reduce.
    A lambda the loss does not reach gets a zero gradient.
    """
    mods = lambda_modules(net.model)
    grads = torch.autograd.grad(net.loss(idx), [m.lam for m in mods], allow_unused=True)
    grads = [torch.zeros_like(m.lam) if g is None else g for m, g in zip(mods, grads)]
    if ctx.distributed:
        for g in grads:
            torch.distributed.all_reduce(g)
            g /= ctx.world_size
    return grads


def _snapshot(net: Supernet, step: int) -> dict:
    lams = torch.cat([m.lam.detach().flatten() for m in lambda_modules(net.model)])
    return {"step": step, "nonzero_lambdas": int((lams != 0).sum()), "lambdas": int(lams.numel()), **net.structure()}


def _prune(net: Supernet) -> None:
    """Rebuild every part whose architecture lost edges (lambdas survive a rebuild one for one: gammas stay valid)."""
    rebuilt = {}
    for name, part in net.parts().items():
        arch = part.pruned_arch()
        if arch != part.arch:
            rebuilt[name] = part.rebuilt(arch)
    if rebuilt:
        net.replace_parts(rebuilt)


def run_dso(
    task: SupernetTask, cfg: DSOConfig, ctx: DistContext | None = None, progress: bool = True
) -> SupernetResult:
    """Pre-train the complete supernet, search lambda with APG (pruning as it goes), map the result to the nearest
    genome and, with ``retrain_steps``, retrain the derived cells from scratch."""
    ctx = ctx or DistContext()
    show = progress and ctx.is_main
    net = task.supernet("dso", cfg.seed, ctx, levels=cfg.levels)
    pre, search = cfg.pretrain_steps, cfg.search_steps
    t0 = time.perf_counter()
    # 1. pre-train the weights of the complete blocks (lambda fixed at 1)
    net.start_weights(
        [WeightPhase(pre, cfg.lr, cfg.weight_decay), WeightPhase(search, cfg.lr * 0.5, cfg.weight_decay, cosine=False)]
    )
    stream = index_batches(torch.arange(net.n_train), net.batch_size, cfg.seed)
    for step in tqdm(range(pre), desc=f"DSO {task.name} pre-train", disable=not show):
        net.weight_step(next(stream), step)
    # 2. search: weights on half A, lambda (APG-NAG) on half B; rebuild without zero edges as they appear
    net.next_phase()
    half_w, half_a = halves(net.n_train, cfg.seed)
    stream_w = index_batches(half_w, net.batch_size, cfg.seed + 1)
    stream_a = index_batches(half_a, net.batch_size, cfg.seed + 2)
    gamma = cfg.gamma if cfg.gamma is not None else auto_gamma(search, cfg.lam_lr, cfg.momentum)
    gammas = block_gammas(net.model, gamma, cfg.budget, run=net.example_forward)
    history = [{**_snapshot(net, 0), "gamma": gamma}]
    bar = tqdm(range(1, search + 1), desc=f"DSO {task.name} search", disable=not show)
    for step in bar:
        loss = net.weight_step(next(stream_w), pre + step - 1)
        grads = lambda_gradients(net, next(stream_a), ctx)
        with torch.no_grad():
            for m, g, g_l1 in zip(lambda_modules(net.model), grads, gammas):
                new, v = apg_nag_step(m.lam, g, m.lam_v, cfg.lam_lr, g_l1, cfg.momentum)
                m.lam.copy_(new)
                m.lam_v.copy_(v)
        if step % cfg.prune_every == 0 or step == search:
            _prune(net)
            history.append({**_snapshot(net, step), "loss": loss})
            bar.set_postfix(nonzero=history[-1]["nonzero_lambdas"], loss=f"{loss:.2f}")
    archs = {name: part.pruned_arch() for name, part in net.parts().items()}
    result = SupernetResult(
        "dso", archs, task.nearest_genome(archs), history, pre + 2 * search, time.perf_counter() - t0
    )
    if cfg.retrain_steps:
        # 3. retrain the pruned architecture from scratch (no lambda: plain sums)
        t1 = time.perf_counter()
        torch.manual_seed(cfg.seed + 7)
        result.model, result.accuracy = task.train_cells("dso", archs, cfg.retrain_steps, cfg.lr, cfg.seed + 3, ctx)
        result.retrain_seconds = time.perf_counter() - t1
    return result
