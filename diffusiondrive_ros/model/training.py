"""One optimisation step of the DiffusionDrive objective (the training loop lives in diffusiondrive_ros.train)."""

from __future__ import annotations

import torch

from ..contract import NUM_POSES
from .diffusiondrive import DiffusionDriveModel
from .losses import total_loss


def sample_diffusion_inputs(
    model: DiffusionDriveModel, batch_size: int, generator: torch.Generator | None = None, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated training timesteps t ~ U{0 .. train_truncation-1} and Gaussian noise for the anchors."""
    head = model.config.trajectory_head
    t = torch.randint(0, head.train_truncation, (batch_size,), generator=generator).to(device)
    noise = torch.randn(batch_size, head.num_anchors, NUM_POSES, 2, generator=generator).to(device)
    return t, noise


def compute_loss(
    model: DiffusionDriveModel, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    b = batch["camera"].shape[0]
    t, noise = sample_diffusion_inputs(model, b, generator, str(batch["camera"].device))
    outputs = model.forward_train(batch["camera"], batch["lidar"], batch["status"], t, noise)
    return total_loss(outputs, batch, model.trajectory_head.plan_anchor, model.config.loss)


def train_step(
    model: DiffusionDriveModel,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
    max_grad_norm: float | None = 1.0,
) -> dict[str, float]:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss, logs = compute_loss(model, batch, generator)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite training loss: {logs}")
    loss.backward()
    if max_grad_norm:
        logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))
    optimizer.step()
    return logs
