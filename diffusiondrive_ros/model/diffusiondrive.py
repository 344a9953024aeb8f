"""The DiffusionDrive network: TransFuser backbone, transformer neck, auxiliary heads, truncated-diffusion planner.

``forward(camera, lidar, status, noise)`` is deterministic given the start noise ``noise`` (B, anchors, 8, 2), which
makes the whole planner one exportable graph.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import NUM_AGENTS, NUM_POSES, STATUS_DIM
from .anchors import load_anchors
from .config import ModelConfig
from .heads import AgentHead, bev_semantic_head
from .trajectory_head import TrajectoryHead
from .transfuser import TransfuserBackbone, stage_grid


class DiffusionDriveModel(nn.Module):
    def __init__(self, cfg: ModelConfig, anchors: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = cfg
        bb, neck = cfg.backbone, cfg.neck
        d = neck.d_model
        self.backbone = TransfuserBackbone(bb, cfg.camera, cfg.lidar)
        lidar_c4 = bb.lidar_encoder.stage_channels[-1]
        self.bev_grid = stage_grid((cfg.lidar.size, cfg.lidar.size), bb.lidar_encoder.stage_strides[-1])
        n_bev_tokens = math.prod(self.bev_grid)
        self.keyval_embedding = nn.Embedding(n_bev_tokens + 1, d)  # BEV tokens + the status token
        self.query_embedding = nn.Embedding(1 + NUM_AGENTS, d)  # the ego/plan query + agent queries
        self.bev_downscale = nn.Conv2d(lidar_c4, d, 1)
        self.status_encoding = nn.Linear(STATUS_DIM, d)
        self.bev_proj = nn.Sequential(nn.Linear(d + bb.bev_channels, d), nn.ReLU(inplace=True), nn.LayerNorm(d))
        layer = nn.TransformerDecoderLayer(d, neck.n_heads, neck.ffn_dim, neck.dropout, batch_first=True)
        self.tf_decoder = nn.TransformerDecoder(layer, neck.n_layers)
        if cfg.aux_heads.agent_head:
            self.agent_head = AgentHead(d, neck.ffn_dim, cfg.lidar.range_m)
        if cfg.aux_heads.bev_semantic_head:
            self.bev_semantic_head = bev_semantic_head(bb.bev_channels, cfg.aux_heads.bev_semantic_size)
        if anchors is None:
            anchors = load_anchors(cfg.trajectory_head.anchors, cfg.trajectory_head.num_anchors)
        self.trajectory_head = TrajectoryHead(cfg.trajectory_head, neck, anchors, cfg.lidar.range_m)

    # -- shared trunk -------------------------------------------------------------------------------------------
    def encode(self, camera: torch.Tensor, lidar: torch.Tensor, status: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone + neck: the planner BEV (B,d,S,S), ego query (B,1,d), agent queries (B,30,d), BEV map."""
        bev_map, bev_feature = self.backbone(camera, lidar)
        b = camera.shape[0]
        h, w = bev_feature.shape[-2:]
        tokens = self.bev_downscale(bev_feature).flatten(2).transpose(1, 2)  # (B, h*w, d)
        status_token = self.status_encoding(status)[:, None]
        keyval = torch.cat([tokens, status_token], dim=1) + self.keyval_embedding.weight[None]
        # Planner BEV: the (position-embedded) BEV tokens upsampled to the BEV map, concatenated with it, projected.
        coarse = keyval[:, :-1].transpose(1, 2).reshape(b, -1, h, w)
        coarse = F.interpolate(coarse, size=bev_map.shape[-2:], mode="bilinear", align_corners=False)
        planner_bev = torch.cat([coarse, bev_map], dim=1).flatten(2).transpose(1, 2)
        planner_bev = self.bev_proj(planner_bev).transpose(1, 2).reshape(b, -1, *bev_map.shape[-2:])
        queries = self.tf_decoder(self.query_embedding.weight[None].expand(b, -1, -1), keyval)
        return {
            "planner_bev": planner_bev,
            "ego_query": queries[:, :1],
            "agent_queries": queries[:, 1:],
            "bev_map": bev_map,
        }

    def aux_outputs(self, enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        if hasattr(self, "agent_head"):
            out["agent_states"], out["agent_labels"] = self.agent_head(enc["agent_queries"])
        if hasattr(self, "bev_semantic_head"):
            out["bev_semantic_map"] = self.bev_semantic_head(enc["bev_map"])
        return out

    # -- inference ----------------------------------------------------------------------------------------------
    def forward(
        self,
        camera: torch.Tensor,
        lidar: torch.Tensor,
        status: torch.Tensor,
        noise: torch.Tensor,
        return_aux: bool = False,
        cache_values: bool = True,
    ) -> dict[str, torch.Tensor]:
        enc = self.encode(camera, lidar, status)
        head = self.trajectory_head
        values = head.bev_values(enc["planner_bev"]) if cache_values else None
        modes, logits = head.denoise(enc["ego_query"], enc["agent_queries"], enc["planner_bev"], noise, values)
        best = logits.argmax(dim=-1)
        index = best[:, None, None, None].expand(-1, 1, NUM_POSES, 3)
        out = {
            "trajectory": torch.gather(modes, 1, index).squeeze(1),
            "modes": modes,
            "mode_scores": logits.sigmoid(),
        }
        if return_aux:
            out.update(self.aux_outputs(enc))
        return out

    # -- training -----------------------------------------------------------------------------------------------
    def forward_train(
        self,
        camera: torch.Tensor,
        lidar: torch.Tensor,
        status: torch.Tensor,
        timesteps: torch.Tensor,
        noise: torch.Tensor,
    ) -> dict[str, object]:
        """Per-cascade-layer (poses, logits) from anchors noised at ``timesteps``, plus the auxiliary outputs."""
        enc = self.encode(camera, lidar, status)
        layers = self.trajectory_head.forward_train(
            enc["ego_query"], enc["agent_queries"], enc["planner_bev"], timesteps, noise
        )
        return {"layers": layers, **self.aux_outputs(enc)}

    def example_inputs(self, batch_size: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs of the right shapes (camera, lidar, status, noise)."""
        cfg = self.config
        g = torch.Generator().manual_seed(seed)
        camera = torch.rand(batch_size, 3, cfg.camera.height, cfg.camera.width, generator=g)
        lidar = torch.rand(batch_size, 1, cfg.lidar.size, cfg.lidar.size, generator=g)
        status = torch.randn(batch_size, STATUS_DIM, generator=g)
        noise = torch.randn(batch_size, cfg.trajectory_head.num_anchors, NUM_POSES, 2, generator=g)
        return camera, lidar, status, noise


def build_model(cfg: ModelConfig, anchors: np.ndarray | None = None, seed: int | None = None) -> DiffusionDriveModel:
    """Build the network (random weights; ``seed`` makes them reproducible)."""
    if seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return DiffusionDriveModel(cfg, anchors)
    return DiffusionDriveModel(cfg, anchors)
