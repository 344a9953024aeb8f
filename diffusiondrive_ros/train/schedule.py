"""Learning-rate schedule: linear warm-up, then cosine decay to a floor, evaluated per optimiser step."""

from __future__ import annotations

import math

import torch

MIN_LR = 1e-6  # the cosine floor of the upstream recipe


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = MIN_LR) -> float:
    """Learning rate for optimiser step ``step`` (0-based).

    Warm-up rises linearly from base_lr/(warmup_steps) at step 0 to base_lr at step warmup_steps - 1; the cosine
    then falls from base_lr to min_lr at the last step (total_steps - 1), and stays at min_lr after it.
    """
    if total_steps < 1 or warmup_steps < 0 or base_lr <= 0 or min_lr < 0:
        raise ValueError(f"bad schedule: total={total_steps}, warmup={warmup_steps}, lr={base_lr}, min={min_lr}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 1:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / (decay_steps - 1))
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr: float = MIN_LR
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following :func:`lr_at` for every param group (its state_dict resumes exactly)."""
    base = optimizer.param_groups[0]["lr"]
    lr_at(0, base, warmup_steps, total_steps, min_lr)  # validate now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, base, warmup_steps, total_steps, min_lr) / base
    )
