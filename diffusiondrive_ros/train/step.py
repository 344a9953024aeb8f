"""The one planner training step and its step driver: the trainer, the NAS proxy evaluation, NAS deploy fine-tuning
and the NAS planner supernets all train through :func:`train_step`.

A step draws the diffusion inputs (timesteps, anchor noise) of the whole global batch from the noise generator and
keeps this process's rows, so a DDP step sees the same noise as one process on the global batch. Gradients are clipped
over the optimiser's parameters: a supernet's architecture parameters, which another optimiser steps, stay unclipped.
With one process, no scaler and AMP off it is plain float32 training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..model.diffusiondrive import DiffusionDriveModel
from ..model.losses import total_loss
from ..model.training import sample_diffusion_inputs
from .distributed import DistContext, rank_slice

Batch = dict[str, torch.Tensor]


class TrainingForward(nn.Module):
    """forward() = the model's training forward, so DDP's gradient hooks see it (DDP wraps forward only)."""

    def __init__(self, model: DiffusionDriveModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, camera, lidar, status, timesteps, noise):  # noqa: ANN001, ANN201 - mirrors forward_train
        return self.model.forward_train(camera, lidar, status, timesteps, noise)


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def training_loss(
    forward: Callable[..., dict] | None,
    model: DiffusionDriveModel,
    batch: Batch,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    amp: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one (local) batch with given diffusion inputs; ``forward`` is the (DDP-wrapped) TrainingForward, or
    None for ``model.forward_train``. Only the forward runs under autocast; the loss is computed in float32."""
    device = batch["camera"].device
    with autocast(device, amp):
        outputs = (forward or model.forward_train)(batch["camera"], batch["lidar"], batch["status"], timesteps, noise)
    outputs = {k: _to_float(v) for k, v in outputs.items()}
    return total_loss(outputs, batch, model.trajectory_head.plan_anchor, model.config.loss)


def _to_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


def planner_loss(
    model: DiffusionDriveModel,
    batch: Batch,
    generator: torch.Generator | None = None,
    *,
    forward: Callable[..., dict] | None = None,
    ctx: DistContext | None = None,
    amp: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of this process's ``batch``, diffusion inputs drawn for the whole global batch."""
    ctx = ctx or DistContext()
    device = batch["camera"].device
    t, noise = sample_diffusion_inputs(model, batch["camera"].shape[0] * ctx.world_size, generator)
    t, noise = rank_slice(t, ctx).to(device), rank_slice(noise, ctx).to(device)
    return training_loss(forward, model, batch, t, noise, amp)


def train_step(
    model: DiffusionDriveModel,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
    *,
    forward: Callable[..., dict] | None = None,
    ctx: DistContext | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = 1.0,
    amp: bool = False,
    step: int | None = None,
) -> dict[str, float]:
    """One optimiser step on ``batch`` (already on the device); returns the loss terms, ``grad_norm`` and ``lr``.

    ``forward``/``ctx``: the DDP-wrapped TrainingForward and its process group; ``scaler``: AMP's gradient scaler;
    ``step`` only names the step in the error raised for a non-finite loss. The caller steps any LR scheduler.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss, logs = planner_loss(model, batch, generator, forward=forward, ctx=ctx, amp=amp)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite training loss{'' if step is None else f' at step {step}'}: {logs}")
    (loss if scaler is None else scaler.scale(loss)).backward()
    if grad_clip:
        if scaler is not None:
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        logs["grad_norm"] = float(nn.utils.clip_grad_norm_(params, grad_clip))
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    logs["lr"] = optimizer.param_groups[0]["lr"]
    return logs


def train_steps(
    model: DiffusionDriveModel,
    epochs: Callable[[], Iterable[Batch]],
    steps: int,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = 1.0,
) -> list[float]:
    """``steps`` single-process steps over epoch after epoch of batches; returns the losses.

    ``epochs()`` starts one epoch (draw its sample order there: the generator is shared with the diffusion noise, so
    the order of the draws is part of the result); ``scheduler`` steps after every optimiser step.
    """
    losses: list[float] = []
    while len(losses) < steps:
        before = len(losses)
        for batch in epochs():
            losses.append(float(train_step(model, batch, optimizer, generator, grad_clip=grad_clip)["loss"]))
            if scheduler is not None:
                scheduler.step()
            if len(losses) >= steps:
                break
        if len(losses) == before:
            raise ValueError("an epoch yielded no batch: nothing to train on")
    return losses
