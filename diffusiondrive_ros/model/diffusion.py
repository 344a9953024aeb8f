"""Truncated DDIM as a few precomputed constants and pure tensor functions (no scheduler objects).

The network predicts the clean sample x0. A DDIM (eta = 0) update from t to t_prev is
    eps   = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t)          (from the unclipped x0)
    x_prev = sqrt(a_prev) clip(x0) + sqrt(1 - a_prev) eps
with a = the cumulative product of (1 - beta) and a_prev = 1 past the last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import TrajectoryHeadConfig


def alphas_cumprod(num_train_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """DDPM 'scaled_linear' schedule: betas = linspace(sqrt(b0), sqrt(b1), T)^2; returns the cumulative alphas."""
    betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def inference_timesteps(steps: int, span: int) -> list[int]:
    """Descending timesteps round(arange(steps) * span / steps): 2 steps over 20 -> [10, 0]."""
    if steps < 1:
        raise ValueError("denoising_steps must be >= 1")
    return [int(t) for t in np.round(np.arange(steps) * (span / steps))[::-1]]


@dataclass(frozen=True)
class DDIMStep:
    """Constants of one denoising step at ``timestep`` (a_t) toward the next one (a_prev)."""

    timestep: int
    sqrt_alpha: float
    sqrt_one_minus_alpha: float
    sqrt_alpha_prev: float
    sqrt_one_minus_alpha_prev: float


@dataclass(frozen=True)
class TruncatedSchedule:
    """Everything the truncated sampler needs, as Python floats baked into the graph at export."""

    start_timestep: int
    sqrt_alpha_start: float
    sqrt_one_minus_alpha_start: float
    steps: tuple[DDIMStep, ...]

    @classmethod
    def from_config(cls, cfg: TrajectoryHeadConfig, timesteps: list[int] | None = None) -> TruncatedSchedule:
        ac = alphas_cumprod(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
        ts = timesteps if timesteps is not None else inference_timesteps(cfg.denoising_steps, cfg.timestep_span)
        start = ts[0] if cfg.start_at_first_timestep else cfg.start_timestep
        steps = []
        for t in ts:
            # diffusers-style previous timestep: t - T / num_inference_steps(=T) = t - 1; past 0 the alpha is 1.
            a_t = float(ac[t])
            a_prev = float(ac[t - 1]) if t >= 1 else 1.0
            steps.append(DDIMStep(t, a_t**0.5, (1 - a_t) ** 0.5, a_prev**0.5, (1 - a_prev) ** 0.5))
        a_s = float(ac[start])
        return cls(start, a_s**0.5, (1 - a_s) ** 0.5, tuple(steps))


def add_noise(
    x0: torch.Tensor, noise: torch.Tensor, sqrt_alpha: torch.Tensor | float, sqrt_one_minus: torch.Tensor | float
) -> torch.Tensor:
    """Forward diffusion q(x_t | x0) = sqrt(a_t) x0 + sqrt(1 - a_t) eps."""
    return sqrt_alpha * x0 + sqrt_one_minus * noise


def ddim_update(sample: torch.Tensor, x0: torch.Tensor, step: DDIMStep) -> torch.Tensor:
    """One deterministic DDIM update with clipping of the predicted x0 (see module docstring)."""
    eps = (sample - step.sqrt_alpha * x0) / step.sqrt_one_minus_alpha
    return step.sqrt_alpha_prev * x0.clamp(-1.0, 1.0) + step.sqrt_one_minus_alpha_prev * eps


def training_noise_levels(cfg: TrajectoryHeadConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(a_t) and sqrt(1 - a_t) for t in [0, train_truncation), for noising anchors during training."""
    ac = torch.as_tensor(alphas_cumprod(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)[: cfg.train_truncation])
    return ac.sqrt().float(), (1 - ac).sqrt().float()
