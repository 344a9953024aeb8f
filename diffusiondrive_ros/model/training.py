"""The random inputs of the DiffusionDrive training objective; the training step is in ``train.step``."""

from __future__ import annotations

import torch

from ..contract import NUM_POSES
from .diffusiondrive import DiffusionDriveModel


def sample_diffusion_inputs(
    model: DiffusionDriveModel, batch_size: int, generator: torch.Generator | None = None, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated training timesteps t ~ U{0 .. train_truncation-1} and Gaussian noise for the anchors."""
    head = model.config.trajectory_head
    t = torch.randint(0, head.train_truncation, (batch_size,), generator=generator).to(device)
    noise = torch.randn(batch_size, head.num_anchors, NUM_POSES, 2, generator=generator).to(device)
    return t, noise

