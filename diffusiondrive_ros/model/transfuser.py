"""TransFuser camera + LiDAR backbone: two encoders fused by a GPT after every stage, then a BEV upscale path.

Pooling sizes are fixed by the config (no data-dependent adaptive pooling), so the graph exports to ONNX.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import BackboneConfig, CameraConfig, FusionConfig, LidarConfig
from .encoders import build_encoder


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate key/query/value/proj Linears (upstream GPT naming)."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"fusion width {dim} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(dropout)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.n_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, c // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // h))
        att = self.attn_drop(att.softmax(dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, n, c)
        return self.resid_drop(self.proj(y))


class GPTBlock(nn.Module):
    """Pre-norm transformer block: attention and a ReLU MLP, each with a residual."""

    def __init__(self, dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, cfg.n_heads, cfg.dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, cfg.mlp_ratio * dim),
            nn.ReLU(True),
            nn.Linear(cfg.mlp_ratio * dim, dim),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Joint attention over the pooled image tokens and LiDAR tokens of one stage."""

    def __init__(self, dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.image_tokens = tuple(cfg.image_tokens)
        self.lidar_tokens = tuple(cfg.lidar_tokens)
        n_tokens = math.prod(self.image_tokens) + math.prod(self.lidar_tokens)
        self.pos_emb = nn.Parameter(torch.zeros(1, n_tokens, dim))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*[GPTBlock(dim, cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c = image.shape[:2]
        n_img = math.prod(self.image_tokens)
        tokens = torch.cat([image.flatten(2).transpose(1, 2), lidar.flatten(2).transpose(1, 2)], dim=1)
        x = self.ln_f(self.blocks(self.drop(self.pos_emb + tokens)))
        image_out = x[:, :n_img].transpose(1, 2).reshape(b, c, *self.image_tokens)
        lidar_out = x[:, n_img:].transpose(1, 2).reshape(b, c, *self.lidar_tokens)
        return image_out, lidar_out


def _pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average-pool to a fixed token grid with a static kernel (exact adaptive pooling when sizes divide)."""
    kh, kw = x.shape[-2] // size[0], x.shape[-1] // size[1]
    if (kh, kw) == (1, 1):
        return x
    return F.avg_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))


def stage_grid(input_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """Spatial size after a stage with cumulative ``stride`` (convs with padding k//2, ceil semantics)."""
    return tuple(math.ceil(s / stride) for s in input_hw)  # type: ignore[return-value]


class TransfuserBackbone(nn.Module):
    """Returns the upscaled BEV map (B, bev_channels, S, S) and the fused LiDAR stage-4 map (B, C4, h, w)."""

    def __init__(self, cfg: BackboneConfig, camera: CameraConfig, lidar: LidarConfig) -> None:
        super().__init__()
        self.image_encoder = build_encoder(cfg.image_encoder)
        self.lidar_encoder = build_encoder(cfg.lidar_encoder)
        img_ch, lid_ch = cfg.image_encoder.stage_channels, cfg.lidar_encoder.stage_channels
        self._check_token_grids(cfg, camera, lidar)
        self.transformers = nn.ModuleList([GPT(c, cfg.fusion) for c in img_ch])
        self.lidar_channel_to_img = nn.ModuleList([nn.Conv2d(lc, ic, 1) for lc, ic in zip(lid_ch, img_ch)])
        self.img_channel_to_lidar = nn.ModuleList([nn.Conv2d(ic, lc, 1) for lc, ic in zip(lid_ch, img_ch)])
        self.fusion_tokens = (tuple(cfg.fusion.image_tokens), tuple(cfg.fusion.lidar_tokens))
        # BEV upscale path (FPN-style top-down on the LiDAR stage-4 map).
        self.c5_conv = nn.Conv2d(lid_ch[-1], cfg.bev_channels, 1)
        self.up_conv5 = nn.Conv2d(cfg.bev_channels, cfg.bev_channels, 3, padding=1)
        self.up_conv4 = nn.Conv2d(cfg.bev_channels, cfg.bev_channels, 3, padding=1)
        self.bev_size = cfg.bev_size

    @staticmethod
    def _check_token_grids(cfg: BackboneConfig, camera: CameraConfig, lidar: LidarConfig) -> None:
        img_tok, lid_tok = tuple(cfg.fusion.image_tokens), tuple(cfg.fusion.lidar_tokens)
        for name, spec, hw, tok in (
            ("image", cfg.image_encoder, (camera.height, camera.width), img_tok),
            ("lidar", cfg.lidar_encoder, (lidar.size, lidar.size), lid_tok),
        ):
            if len(spec.stage_channels) != 4:
                raise ValueError(f"{name} encoder needs 4 stages")
            for i, stride in enumerate(spec.stage_strides):
                grid = stage_grid(hw, stride)
                if grid[0] % tok[0] or grid[1] % tok[1]:
                    raise ValueError(
                        f"{name} stage {i + 1} grid {grid} is not a multiple of the fusion token grid {tok}; "
                        "change fusion tokens or the input size"
                    )

    def fuse(self, i: int, image: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img_tok, lid_tok = self.fusion_tokens
        img_emb = _pool_to(image, img_tok)
        lid_emb = self.lidar_channel_to_img[i](_pool_to(lidar, lid_tok))
        img_out, lid_out = self.transformers[i](img_emb, lid_emb)
        lid_out = self.img_channel_to_lidar[i](lid_out)
        img_out = F.interpolate(img_out, size=image.shape[-2:], mode="bilinear", align_corners=False)
        lid_out = F.interpolate(lid_out, size=lidar.shape[-2:], mode="bilinear", align_corners=False)
        return image + img_out, lidar + lid_out

    def top_down(self, lidar: torch.Tensor) -> torch.Tensor:
        p5 = F.relu(self.c5_conv(lidar))
        p4 = F.relu(self.up_conv5(F.interpolate(p5, scale_factor=2.0, mode="bilinear", align_corners=False)))
        p3 = F.interpolate(p4, size=(self.bev_size, self.bev_size), mode="bilinear", align_corners=False)
        return F.relu(self.up_conv4(p3))

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.image_encoder.stem(camera)
        lid = self.lidar_encoder.stem(lidar)
        for i, (img_stage, lid_stage) in enumerate(zip(self.image_encoder.stages, self.lidar_encoder.stages)):
            image, lid = self.fuse(i, img_stage(image), lid_stage(lid))
        return self.top_down(lid), lid
