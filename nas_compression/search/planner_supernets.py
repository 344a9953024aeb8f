"""DSO-NAS and EGS searched on the planner proxy task: the supernet cells are the planner's encoders.

Both searches train the whole planner (cell encoders, fusion, neck, heads) through the planner's own loss
(``model.training.compute_loss``) on the proxy task's training subset, then map each encoder's derived cells to
the nearest stage genome (``supernet.genome_map``), which the planner proxy evaluation and Q/DQ export take
unchanged.

What follows each method and what is adapted to the planner:

- DSO-NAS: pre-train with lambda fixed at 1, then alternate a weight step on one half of the training samples and an
  APG-NAG step of lambda (soft threshold gamma, momentum 0.9, lambda >= 0) on the other half; rebuild without the
  zero edges every ``prune_every`` search steps; gamma per block scaled by its FLOPs share (budget-aware variant).
- EGS: per node M hard straight-through Gumbel-Softmax samples combined by max; weights and alpha (Adam, betas
  (0.5, 0.999)) step on the same backward pass; temperature annealed geometrically ``tau_start`` -> ``tau_end``.
- Adapted: the *weights* use the proxy task's optimiser (AdamW, warm-up + cosine, gradient clipping at 1, as every
  genome evaluation trains), not Nesterov SGD / SGD: the planner's attention and diffusion head do not train in a
  few hundred SGD steps, and a loss that has not moved gives lambda and alpha no signal.

Budget: ``steps`` training batches in all (DSO: a third pre-training, the rest split evenly between weight and lambda
batches; EGS: one batch per step), so a supernet gets the same number of training batches as ``steps /
train_steps`` genome evaluations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from diffusiondrive_ros.model import load_config
from diffusiondrive_ros.model.training import compute_loss
from diffusiondrive_ros.train.schedule import lr_at

from ..evaluate.planner import PlannerBudget, load_split
from ..space.genome import Genome
from ..supernet.dso_net import lambda_modules
from ..supernet.egs_net import derive
from ..supernet.genome_map import nearest_planner_genome
from ..supernet.planner_cells import (
    DSOCellEncoder,
    EGSCellEncoder,
    cell_encoders,
    complete_dso_arch,
    egs_space,
    encoder_templates,
    planner_with_encoders,
    pruned_encoder_arch,
    rebuild_encoder,
)
from ..supernet.train import batches, halves
from .dso import apg_nag_step, block_gammas
from .egs import temperature
from .tasks import planner_template


@dataclass(frozen=True)
class PlannerDSOConfig:
    steps: int = 300  # training batches in all
    levels: int = 2
    gamma: float | None = None  # None: auto_gamma (the search's length sets the L1 pull)
    lam_lr: float = 0.1
    momentum: float = 0.9
    prune_every: int = 10
    budget: str = "flops"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 3 or self.levels < 1 or self.prune_every < 1:
            raise ValueError("need steps >= 3 (pre-train, weight and lambda batches), levels >= 1, prune_every >= 1")
        if (self.gamma is not None and self.gamma < 0) or self.lam_lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError("need gamma >= 0, lam_lr > 0 and 0 <= momentum < 1")


def auto_gamma(search_steps: int, lam_lr: float, momentum: float, pull: float = 1.5) -> float:
    """gamma whose soft threshold alone would move a lambda by ``pull`` over the search.

    With momentum the APG step shrinks an unopposed lambda by about lam_lr * gamma / (1 - momentum) per step, so a
    fixed gamma prunes everything in a long search and nothing in a short one. Here an edge survives only if the
    planner loss's gradient holds its lambda up against a pull of 1.5 x its initial value; for the ~100-step
    searches of the proxy budget this gives gamma ~ 0.01, the paper's ImageNet value.
    """
    return pull * (1.0 - momentum) / (lam_lr * max(1, search_steps))


@dataclass(frozen=True)
class PlannerEGSConfig:
    steps: int = 300
    nodes: int = 3
    m: int = 2
    arch_lr: float = 3e-3  # the paper's 3e-4 assumes hundreds of epochs
    tau_start: float = 5.0
    tau_end: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.nodes < 1 or self.m < 1:
            raise ValueError("need steps, nodes and m >= 1")
        if not self.tau_start >= self.tau_end > 0:
            raise ValueError("need tau_start >= tau_end > 0")


@dataclass
class PlannerSupernetResult:
    method: str
    genome: Genome  # the nearest stage genome of the derived cells (both encoders)
    archs: dict[str, dict]  # per encoder, the derived cell architecture (to_dict)
    train_steps: int  # training batches spent searching
    search_seconds: float
    history: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        if self.method == "dso":
            return "; ".join(f"{name}: {sum(len(b['ops']) for b in a['blocks'])} ops" for name, a in self.archs.items())
        return "; ".join(
            f"{name}: " + " ".join("+".join(f"{op}@{p}" for p, op in node) for node in a["cell"])
            for name, a in self.archs.items()
        )


def _weight_params(model: nn.Module, exclude: list[nn.Parameter]) -> list[tuple[str, nn.Parameter]]:
    skip = {id(p) for p in exclude}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in skip]


def _adamw(named: list[tuple[str, nn.Parameter]], lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW([p for _, p in named], lr=lr, weight_decay=1e-4)


def _carry_state(old: torch.optim.Optimizer, old_named: list, new: torch.optim.Optimizer, new_named: list) -> None:
    """Move AdamW moments to the rebuilt model's parameters by name (same shape): pruning keeps the training going."""
    by_name = {n: old.state[p] for n, p in old_named if p in old.state}
    for n, p in new_named:
        st = by_name.get(n)
        if st and st["exp_avg"].shape == p.shape:
            new.state[p] = st


def _set_lr(opt: torch.optim.Optimizer, step: int, budget: PlannerBudget, total: int) -> None:
    lr = lr_at(step, budget.lr, min(budget.warmup_steps, total - 1), total)
    for g in opt.param_groups:
        g["lr"] = lr


def _batch(data: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[idx] for k, v in data.items()}


def _weight_step(model, data, idx, opt, gen) -> float:  # noqa: ANN001 - one clipped AdamW step on the planner loss
    model.train()
    loss, _ = compute_loss(model, _batch(data, idx), gen)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite supernet loss {float(loss)}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
    opt.step()
    return float(loss.detach())


def _stream(indices: torch.Tensor, batch_size: int, seed: int):  # noqa: ANN202 - never empty, even for tiny splits
    return batches(indices, max(1, min(batch_size, len(indices))), seed)


def run_planner_dso(
    data_dir: str, budget: PlannerBudget, cfg: PlannerDSOConfig, progress: bool = True
) -> PlannerSupernetResult:
    """DSO-NAS with complete blocks as the planner's encoder stages; returns the nearest planner genome."""
    base = load_config(budget.base_config)
    train = load_split(str(data_dir), "train", budget.train_samples, budget.base_config)
    templates = encoder_templates(base)
    torch.manual_seed(cfg.seed)  # the cell encoders' initial weights
    encoders = {n: DSOCellEncoder(t, complete_dso_arch(t, size, cfg.levels)) for n, (t, size) in templates.items()}
    model = planner_with_encoders(base, encoders, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(train["camera"])
    pre_steps = max(1, cfg.steps // 3)
    search_steps = max(1, (cfg.steps - pre_steps) // 2)
    t0 = time.perf_counter()
    # 1. pre-train everything with lambda fixed at 1
    lams = [m.lam for m in lambda_modules(model)]
    named = _weight_params(model, lams)
    opt = _adamw(named, budget.lr)
    stream = _stream(torch.arange(n), budget.batch_size, cfg.seed)
    for step in tqdm(range(pre_steps), desc="DSO planner pre-train", disable=not progress):
        _set_lr(opt, step, budget, pre_steps + search_steps)
        _weight_step(model, train, next(stream), opt, gen)
    # 2. search: weights on half A, lambda (APG-NAG) on half B; rebuild without zero edges as they appear
    half_w, half_a = halves(n, cfg.seed)
    stream_w = _stream(half_w, budget.batch_size, cfg.seed + 1)
    stream_a = _stream(half_a, budget.batch_size, cfg.seed + 2)
    gamma = cfg.gamma if cfg.gamma is not None else auto_gamma(search_steps, cfg.lam_lr, cfg.momentum)
    gammas = block_gammas(model, None, gamma, cfg.budget, run=lambda: model(*model.example_inputs(1, seed=0)))
    history = [{**_dso_snapshot(model, 0), "gamma": gamma}]
    bar = tqdm(range(1, search_steps + 1), desc="DSO planner search", disable=not progress)
    for step in bar:
        _set_lr(opt, pre_steps + step - 1, budget, pre_steps + search_steps)
        loss = _weight_step(model, train, next(stream_w), opt, gen)
        _lambda_step(model, train, next(stream_a), gen, gammas, cfg)
        if step % cfg.prune_every == 0 or step == search_steps:
            model, opt, named = _prune(model, opt, named)
            history.append({**_dso_snapshot(model, step), "loss": loss})
            bar.set_postfix(nonzero=history[-1]["nonzero_lambdas"], loss=f"{loss:.2f}")
    archs = {name: pruned_encoder_arch(enc) for name, enc in cell_encoders(model).items()}
    genome = nearest_planner_genome(archs, planner_template(budget.base_config))
    return PlannerSupernetResult(
        "dso",
        genome,
        {k: a.to_dict() for k, a in archs.items()},
        pre_steps + 2 * search_steps,
        time.perf_counter() - t0,
        history,
    )


def _lambda_step(model, data, idx, gen, gammas: list[float], cfg: PlannerDSOConfig) -> None:  # noqa: ANN001
    """d loss / d lambda on a batch of the other half, then one APG-NAG step of every lambda."""
    model.train()
    mods = lambda_modules(model)
    loss, _ = compute_loss(model, _batch(data, idx), gen)
    grads = torch.autograd.grad(loss, [m.lam for m in mods], allow_unused=True)
    with torch.no_grad():
        for m, g, gamma in zip(mods, grads, gammas):
            g = torch.zeros_like(m.lam) if g is None else g
            new, v = apg_nag_step(m.lam, g, m.lam_v, cfg.lam_lr, gamma, cfg.momentum)
            m.lam.copy_(new)
            m.lam_v.copy_(v)


def _prune(model, opt, named):  # noqa: ANN001, ANN202 - rebuild encoders whose architecture lost edges
    changed = False
    for name, enc in cell_encoders(model).items():
        arch = pruned_encoder_arch(enc)
        if arch != enc.arch:
            setattr(model.backbone, f"{name}_encoder", rebuild_encoder(enc, arch))
            changed = True
    if not changed:
        return model, opt, named
    # gammas stay valid: lambda modules survive a rebuild one for one (an emptied block keeps an empty lambda)
    new_named = _weight_params(model, [m.lam for m in lambda_modules(model)])
    new_opt = _adamw(new_named, opt.param_groups[0]["lr"])
    _carry_state(opt, named, new_opt, new_named)
    return model, new_opt, new_named


def _dso_snapshot(model: nn.Module, step: int) -> dict:
    lams = torch.cat([m.lam.detach().flatten() for m in lambda_modules(model)])
    encs = cell_encoders(model)
    return {
        "step": step,
        "nonzero_lambdas": int((lams != 0).sum()),
        "lambdas": int(lams.numel()),
        "edges": {n: e.arch.num_edges() for n, e in encs.items()},
        "ops": {n: e.arch.num_ops() for n, e in encs.items()},
    }


def run_planner_egs(
    data_dir: str, budget: PlannerBudget, cfg: PlannerEGSConfig, progress: bool = True
) -> PlannerSupernetResult:
    """EGS with shared-alpha cells as the planner's encoder stages; returns the nearest planner genome."""
    base = load_config(budget.base_config)
    train = load_split(str(data_dir), "train", budget.train_samples, budget.base_config)
    torch.manual_seed(cfg.seed)  # the cell encoders' initial weights and alphas
    encoders = {
        name: EGSCellEncoder(t, egs_space(t, size, cfg.nodes, cfg.m), seed=cfg.seed + k)
        for k, (name, (t, size)) in enumerate(encoder_templates(base).items())
    }
    model = planner_with_encoders(base, encoders, cfg.seed)
    alphas = [p for e in encoders.values() for p in e.arch_parameters()]
    named = _weight_params(model, alphas)
    opt_w = _adamw(named, budget.lr)
    opt_a = torch.optim.Adam(alphas, lr=cfg.arch_lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    stream = _stream(torch.arange(len(train["camera"])), budget.batch_size, cfg.seed)
    history = []
    t0 = time.perf_counter()
    for step in tqdm(range(cfg.steps), desc="EGS planner search", disable=not progress):
        tau = temperature(step, cfg.steps, cfg.tau_start, cfg.tau_end)
        for k, enc in enumerate(encoders.values()):
            enc.tau = tau
            enc.reseed(cfg.seed * 1_000_003 + 2 * step + k)
        _set_lr(opt_w, step, budget, cfg.steps)
        opt_a.zero_grad(set_to_none=True)
        loss = _weight_step(model, train, next(stream), opt_w, gen)  # one backward: weights and alpha
        opt_a.step()
        history.append({"step": step, "tau": tau, "loss": loss})
    archs = {name: derive(enc) for name, enc in encoders.items()}
    genome = nearest_planner_genome(archs, planner_template(budget.base_config))
    return PlannerSupernetResult(
        "egs", genome, {k: a.to_dict() for k, a in archs.items()}, cfg.steps, time.perf_counter() - t0, history
    )
