"""DiffusionDrive's trajectory head: truncated diffusion from anchors through a cascade diffusion decoder.

Inference (``denoise``): noise the normalised anchors to a small timestep with the caller's epsilon, then for each
step decode clean trajectories with the cascade and (except after the last step) apply a DDIM update. The BEV value
convolution depends only on the frame, so it is computed once per frame and layer (``bev_values``) and shared by
every step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import NUM_POSES
from .config import NeckConfig, TrajectoryHeadConfig
from .diffusion import TruncatedSchedule, add_noise, ddim_update, training_noise_levels

WAYPOINT_EMBED_DIM = 64  # sine features per (x, y) waypoint (32 for y, then 32 for x)


def waypoint_sine_embedding(points: torch.Tensor, dim: int = WAYPOINT_EMBED_DIM) -> torch.Tensor:
    """(..., 2) metric (x, y) -> (..., dim): sin/cos pairs of 2*pi*coord over 10000-based wavelengths, y first."""
    half = dim // 2
    exponents = torch.arange(0, half, 2, dtype=points.dtype, device=points.device) / half
    inv_freq = (2.0 * math.pi) / (10000.0**exponents)

    def embed(coord: torch.Tensor) -> torch.Tensor:
        phase = coord[..., None] * inv_freq
        return torch.stack([phase.sin(), phase.cos()], dim=-1).flatten(-2)

    return torch.cat([embed(points[..., 1]), embed(points[..., 0])], dim=-1)


class SinusoidalTimeEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freq = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        phase = t.float()[:, None] * freq[None]
        return torch.cat([phase.sin(), phase.cos()], dim=-1)


class GridSampleBEVAttention(nn.Module):
    """Deformable-style spatial cross-attention: sample the BEV value map at each waypoint, softmax-weighted sum."""

    def __init__(self, d_model: int, num_points: int, bev_range_m: float, dropout: float) -> None:
        super().__init__()
        self.bev_range_m = bev_range_m
        self.attention_weights = nn.Linear(d_model, num_points)
        self.output_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.value_proj = nn.Sequential(nn.Conv2d(d_model, d_model, 3, padding=1), nn.ReLU(inplace=True))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, queries: torch.Tensor, points: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """queries (B,M,d); points (B,M,P,2) metric x,y; value (B,d,S,S) with rows = x and columns = y."""
        # grid_sample's grid is (column, row) = (y, x), normalised to [-1, 1] over +-range.
        grid = torch.stack([points[..., 1], points[..., 0]], dim=-1) / self.bev_range_m
        weights = self.attention_weights(queries).softmax(dim=-1)  # (B, M, P)
        sampled = F.grid_sample(value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = (sampled * weights.unsqueeze(1)).sum(dim=-1).transpose(1, 2)  # (B, M, d)
        return self.dropout(self.output_proj(out)) + queries


class TimeModulation(nn.Module):
    """FiLM: x * (1 + scale) + shift, scale/shift from the time embedding."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.scale_shift_mlp = nn.Sequential(nn.Mish(), nn.Linear(d_model, 2 * d_model))

    def forward(self, x: torch.Tensor, time_embed: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift_mlp(time_embed).chunk(2, dim=-1)
        return x * (1.0 + scale) + shift


def _linear_relu_ln(d: int, repeats: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(repeats):
        layers += [nn.Linear(d, d), nn.ReLU(inplace=True), nn.LayerNorm(d)]
    return layers


class PlanRefinement(nn.Module):
    """Per-mode classification logit and (8 x 3) regression."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.plan_cls_branch = nn.Sequential(*_linear_relu_ln(d_model, 2), nn.Linear(d_model, 1))
        self.plan_reg_branch = nn.Sequential(
            nn.Linear(d_model, d_model),
            nn.ReLU(),
            nn.Linear(d_model, d_model),
            nn.ReLU(),
            nn.Linear(d_model, NUM_POSES * 3),
        )
        nn.init.constant_(self.plan_cls_branch[-1].bias, -math.log(99.0))  # prior probability 0.01

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, _ = x.shape
        return self.plan_reg_branch(x).view(b, m, NUM_POSES, 3), self.plan_cls_branch(x).squeeze(-1)


class DiffusionDecoderLayer(nn.Module):
    def __init__(self, cfg: TrajectoryHeadConfig, d_model: int, bev_range_m: float, attn_dropout: float) -> None:
        super().__init__()
        self.ffn_residual = cfg.ffn_residual
        self.cross_bev_attention = GridSampleBEVAttention(d_model, NUM_POSES, bev_range_m, cfg.dropout)
        self.cross_agent_attention = nn.MultiheadAttention(d_model, cfg.n_heads, dropout=attn_dropout, batch_first=True)
        self.cross_ego_attention = nn.MultiheadAttention(d_model, cfg.n_heads, dropout=attn_dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, cfg.ffn_dim), nn.ReLU(), nn.Linear(cfg.ffn_dim, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.time_modulation = TimeModulation(d_model)
        self.task_decoder = PlanRefinement(d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.dropout1 = nn.Dropout(cfg.dropout)

    def forward(
        self,
        feats: torch.Tensor,
        points: torch.Tensor,
        value: torch.Tensor,
        agents: torch.Tensor,
        ego: torch.Tensor,
        time_embed: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.cross_bev_attention(feats, points, value)
        x = self.norm1(x + self.dropout(self.cross_agent_attention(x, agents, agents, need_weights=False)[0]))
        x = self.norm2(x + self.dropout1(self.cross_ego_attention(x, ego, ego, need_weights=False)[0]))
        x = self.norm3(x + self.ffn(x)) if self.ffn_residual else self.norm3(self.ffn(x))
        x = self.time_modulation(x, time_embed)
        reg, cls = self.task_decoder(x)
        xy = reg[..., :2] + points  # offsets from this layer's input waypoints
        heading = reg[..., 2:3].tanh() * math.pi
        return torch.cat([xy, heading], dim=-1), cls, x


class CascadeDecoder(nn.Module):
    """Layers refine each other's waypoints; each layer's prediction is kept for the per-layer loss."""

    def __init__(self, cfg: TrajectoryHeadConfig, d_model: int, bev_range_m: float, attn_dropout: float) -> None:
        super().__init__()
        self.chain_features = cfg.chain_layer_features
        self.layers = nn.ModuleList(
            [DiffusionDecoderLayer(cfg, d_model, bev_range_m, attn_dropout) for _ in range(cfg.cascade_layers)]
        )

    def forward(
        self,
        feats: torch.Tensor,
        points: torch.Tensor,
        values: list[torch.Tensor],
        agents: torch.Tensor,
        ego: torch.Tensor,
        time_embed: torch.Tensor,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        outputs = []
        layer_feats = feats
        for layer, value in zip(self.layers, values):
            poses, cls, new_feats = layer(layer_feats, points, value, agents, ego, time_embed)
            outputs.append((poses, cls))
            points = poses[..., :2].detach()
            if self.chain_features:  # upstream re-uses the first layer's input features for every layer
                layer_feats = new_feats
        return outputs


class TrajectoryHead(nn.Module):
    def __init__(self, cfg: TrajectoryHeadConfig, neck: NeckConfig, anchors: np.ndarray, bev_range_m: float) -> None:
        super().__init__()
        d = neck.d_model
        anchors = np.asarray(anchors, dtype=np.float32)
        if anchors.shape != (cfg.num_anchors, NUM_POSES, 2):
            raise ValueError(f"anchors must have shape ({cfg.num_anchors}, {NUM_POSES}, 2); got {anchors.shape}")
        self.cfg = cfg
        self.register_buffer("plan_anchor", torch.from_numpy(anchors.copy()))
        self.plan_anchor_encoder = nn.Sequential(
            nn.Linear(NUM_POSES * WAYPOINT_EMBED_DIM, d), nn.ReLU(), nn.LayerNorm(d), nn.Linear(d, d)
        )
        self.time_mlp = nn.Sequential(SinusoidalTimeEmbedding(d), nn.Linear(d, 4 * d), nn.Mish(), nn.Linear(4 * d, d))
        self.diff_decoder = CascadeDecoder(cfg, d, bev_range_m, neck.dropout)
        self.schedule = TruncatedSchedule.from_config(cfg)
        sqrt_a, sqrt_1ma = training_noise_levels(cfg)
        self.register_buffer("train_sqrt_alpha", sqrt_a, persistent=False)
        self.register_buffer("train_sqrt_one_minus_alpha", sqrt_1ma, persistent=False)
        lo = torch.tensor([cfg.norm_x[0], cfg.norm_y[0]], dtype=torch.float32)
        span = torch.tensor([cfg.norm_x[1], cfg.norm_y[1]], dtype=torch.float32)
        self.register_buffer("norm_lo", lo, persistent=False)
        self.register_buffer("norm_span", span, persistent=False)

    # -- normalisation ------------------------------------------------------------------------------------------
    def normalize(self, xy: torch.Tensor) -> torch.Tensor:
        return 2.0 * (xy - self.norm_lo) / self.norm_span - 1.0

    def denormalize(self, xy_n: torch.Tensor) -> torch.Tensor:
        return (xy_n + 1.0) / 2.0 * self.norm_span + self.norm_lo

    # -- building blocks ----------------------------------------------------------------------------------------
    def bev_values(self, bev: torch.Tensor) -> list[torch.Tensor]:
        """The value map of every cascade layer: once per frame, shared by all denoising steps."""
        return [layer.cross_bev_attention.value_proj(bev) for layer in self.diff_decoder.layers]

    def encode_waypoints(self, points: torch.Tensor) -> torch.Tensor:
        return self.plan_anchor_encoder(waypoint_sine_embedding(points).flatten(-2))

    def time_embedding(self, timestep: int, device: torch.device) -> torch.Tensor:
        return self.time_mlp(torch.full((1,), float(timestep), device=device)).unsqueeze(1)  # (1, 1, d)

    def decode_step(
        self,
        x_norm: torch.Tensor,
        time_embed: torch.Tensor,
        values: list[torch.Tensor],
        agents: torch.Tensor,
        ego: torch.Tensor,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One pass of the cascade on a (noisy) normalised sample; returns every layer's (poses, logits)."""
        points = self.denormalize(x_norm.clamp(-1.0, 1.0))
        return self.diff_decoder(self.encode_waypoints(points), points, values, agents, ego, time_embed)

    # -- inference ----------------------------------------------------------------------------------------------
    def denoise(
        self,
        ego: torch.Tensor,
        agents: torch.Tensor,
        bev: torch.Tensor,
        noise: torch.Tensor,
        values: list[torch.Tensor] | None = None,
        schedule: TruncatedSchedule | None = None,
        from_pure_noise: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Modes (B, M, 8, 3) and logits (B, M) after the schedule's steps.

        ``from_pure_noise`` starts from epsilon itself (a vanilla diffusion policy, for the step-count benchmark).
        ``values=None`` recomputes the value maps inside every step (the uncached reference path).
        """
        schedule = schedule or self.schedule
        if from_pure_noise:
            x = noise
        else:
            x = add_noise(
                self.normalize(self.plan_anchor)[None],
                noise,
                schedule.sqrt_alpha_start,
                schedule.sqrt_one_minus_alpha_start,
            )
        poses = logits = None
        for i, step in enumerate(schedule.steps):
            step_values = values if values is not None else self.bev_values(bev)
            outputs = self.decode_step(x, self.time_embedding(step.timestep, bev.device), step_values, agents, ego)
            poses, logits = outputs[-1]
            if i + 1 < len(schedule.steps):  # the last update's sample is never used: the poses are the output
                x = ddim_update(x, self.normalize(poses[..., :2]), step)
        assert poses is not None and logits is not None
        return poses, logits

    # -- training -----------------------------------------------------------------------------------------------
    def forward_train(
        self,
        ego: torch.Tensor,
        agents: torch.Tensor,
        bev: torch.Tensor,
        timesteps: torch.Tensor,
        noise: torch.Tensor,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Noise the anchors at ``timesteps`` (B,) in [0, train_truncation) and decode once: per-layer outputs."""
        sa = self.train_sqrt_alpha[timesteps].view(-1, 1, 1, 1)
        s1 = self.train_sqrt_one_minus_alpha[timesteps].view(-1, 1, 1, 1)
        x = add_noise(self.normalize(self.plan_anchor)[None], noise, sa, s1)
        time_embed = self.time_mlp(timesteps).unsqueeze(1)
        return self.decode_step(x, time_embed, self.bev_values(bev), agents, ego)
