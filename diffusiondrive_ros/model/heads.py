"""Auxiliary heads (training signal, optional at inference): agent boxes and BEV semantics."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..contract import AGENT_STATE_DIM, NUM_BEV_CLASSES


class AgentHead(nn.Module):
    """Per agent query: (x, y) = tanh * range, heading = tanh * pi, length, width; and a presence logit."""

    def __init__(self, d_model: int, d_ffn: int, xy_range: float) -> None:
        super().__init__()
        self.xy_range = xy_range
        self.mlp_states = nn.Sequential(nn.Linear(d_model, d_ffn), nn.ReLU(), nn.Linear(d_ffn, AGENT_STATE_DIM))
        self.mlp_label = nn.Sequential(nn.Linear(d_model, 1))

    def forward(self, agent_queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.mlp_states(agent_queries)
        xy = raw[..., 0:2].tanh() * self.xy_range
        heading = raw[..., 2:3].tanh() * math.pi
        states = torch.cat([xy, heading, raw[..., 3:]], dim=-1)
        return states, self.mlp_label(agent_queries).squeeze(-1)


def bev_semantic_head(channels: int, out_size: tuple[int, int]) -> nn.Sequential:
    """3x3 conv, ReLU, 1x1 conv to the classes, bilinear resize to the label map size."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, NUM_BEV_CLASSES, 1),
        nn.Upsample(size=tuple(out_size), mode="bilinear", align_corners=False),
    )
