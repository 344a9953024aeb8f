"""Export-only rewrites: the same function as the PyTorch model, written so that the ONNX graph does less work.

Sampled value maps. Each cascade layer's BEV cross-attention convolves the whole planner BEV (3x3, d -> d, on S x S
cells: 4.8 GFLOP per layer for navsim, ~15 % of the network) and then reads it with ``grid_sample`` at only
anchors x poses x 4 bilinear corners per denoising step. :class:`SampledValueAttention` evaluates the convolution
(and its ReLU) at exactly those corners instead -- a gather of 3x3 patches and one MatMul -- and blends them with the
bilinear and attention weights. With zero padding the result equals ``grid_sample(relu(conv(bev)))`` up to float
summation order; the export parity check still compares the graph with the unmodified PyTorch model.

It pays off when ``denoising_steps * anchors * poses * 4 < S * S`` (navsim: 1280 < 4096); the tiny config's 24 x 24
map is smaller than that, so :func:`should_sample_values` keeps its dense convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from ..contract import NUM_POSES
from ..model.config import ModelConfig
from ..model.diffusiondrive import DiffusionDriveModel
from ..model.trajectory_head import GridSampleBEVAttention

BILINEAR_CORNERS = 4
VALUE_MODES = ("auto", "dense", "sampled")


class PaddedTokens(nn.Module):
    """(B, C, S, S) -> (B, (S+2)^2, C): the zero-padded map as rows, so a 3x3 patch is 9 row gathers."""

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(bev, (1, 1, 1, 1))
        return padded.flatten(2).transpose(1, 2)


class SampledValueAttention(nn.Module):
    """GridSampleBEVAttention with its value convolution evaluated only where grid_sample reads it.

    Reuses the original's Linears; ``value_proj`` becomes :class:`PaddedTokens`, and the conv weights are copied into
    a (9 C, C_out) matrix ordered like the gathered patches (ky, kx, c). Built on an export copy of the model only.
    """

    def __init__(self, attention: GridSampleBEVAttention, map_size: int) -> None:
        super().__init__()
        if not has_plain_value_conv(attention):
            raise ValueError("SampledValueAttention needs value_proj = Conv2d(3x3, stride 1, padding 1, bias) + ReLU")
        conv = attention.value_proj[0]
        self.bev_range_m = attention.bev_range_m
        self.attention_weights = attention.attention_weights
        self.output_proj = attention.output_proj
        self.dropout = attention.dropout
        self.value_proj = PaddedTokens()
        self.map_size = int(map_size)
        weight = conv.weight.detach()
        self.register_buffer("patch_weight", weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous())
        self.register_buffer("patch_bias", conv.bias.detach().clone())
        padded = self.map_size + 2
        offsets = torch.tensor([ky * padded + kx for ky in range(3) for kx in range(3)], dtype=torch.int64)
        self.register_buffer("patch_offsets", offsets)

    def forward(self, queries: torch.Tensor, points: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """queries (B,M,d); points (B,M,P,2) metric x,y; value (B,(S+2)^2,C) from :class:`PaddedTokens`."""
        b, m, p, _ = points.shape
        size, padded = self.map_size, self.map_size + 2
        # grid_sample(align_corners=False) source pixel: ((g + 1) * S - 1) / 2; columns follow y, rows follow x.
        col = ((points[..., 1] / self.bev_range_m + 1.0) * size - 1.0) / 2.0
        row = ((points[..., 0] / self.bev_range_m + 1.0) * size - 1.0) / 2.0
        col0, row0 = col.floor(), row.floor()
        fc, fr = col - col0, row - row0
        corner_rows = torch.stack([row0, row0, row0 + 1.0, row0 + 1.0], dim=-1)  # (B,M,P,4)
        corner_cols = torch.stack([col0, col0 + 1.0, col0, col0 + 1.0], dim=-1)
        bilinear = torch.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc], dim=-1)
        inside = (corner_rows >= 0) & (corner_rows <= size - 1) & (corner_cols >= 0) & (corner_cols <= size - 1)
        rows = corner_rows.clamp(0, size - 1).to(torch.int64)
        cols = corner_cols.clamp(0, size - 1).to(torch.int64)
        batch_base = torch.arange(b, device=points.device, dtype=torch.int64).view(b, 1, 1, 1) * (padded * padded)
        top_left = batch_base + rows * padded + cols  # padded-map index of each corner's 3x3 patch origin
        index = (top_left.unsqueeze(-1) + self.patch_offsets).reshape(-1)
        patches = value.reshape(b * padded * padded, -1).index_select(0, index)
        patches = patches.reshape(b, m, p * BILINEAR_CORNERS, -1)
        corner_values = torch.relu(patches @ self.patch_weight + self.patch_bias)  # (B,M,P*4,C)
        attention = self.attention_weights(queries).softmax(dim=-1)  # (B,M,P)
        weights = (attention.unsqueeze(-1) * bilinear * inside.to(bilinear.dtype)).reshape(b, m, 1, -1)
        out = (weights @ corner_values).squeeze(-2)  # (B,M,C)
        return self.dropout(self.output_proj(out)) + queries


def has_plain_value_conv(attention: nn.Module) -> bool:
    """value_proj is exactly a 3x3 / stride 1 / padding 1 biased Conv2d + ReLU (a fake-quant subclass is not)."""
    proj = getattr(attention, "value_proj", None)
    if not isinstance(proj, nn.Sequential) or len(proj) != 2:
        return False
    conv, act = proj[0], proj[1]
    return (
        type(conv) is nn.Conv2d
        and isinstance(act, nn.ReLU)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is not None
    )


def should_sample_values(cfg: ModelConfig) -> bool:
    """True when evaluating the value conv at the sampled corners costs less than convolving the whole map."""
    head, size = cfg.trajectory_head, cfg.backbone.bev_size
    corners = head.denoising_steps * head.num_anchors * NUM_POSES * BILINEAR_CORNERS
    return corners < size * size


def rewrite_for_export(model: DiffusionDriveModel, values: str = "auto") -> list[str]:
    """Swap export-friendly modules into ``model`` in place (pass a copy); returns the rewrites applied.

    ``values``: "sampled" (always), "dense" (never) or "auto" (when :func:`should_sample_values` and the value
    convolutions are plain Conv2d: a fake-quantized model, for example, keeps its convolutions for Q/DQ placement).
    """
    if values not in VALUE_MODES:
        raise ValueError(f"values must be one of {VALUE_MODES}, got {values!r}")
    layers = list(model.trajectory_head.diff_decoder.layers)
    sample = values == "sampled" or (
        values == "auto"
        and should_sample_values(model.config)
        and all(has_plain_value_conv(layer.cross_bev_attention) for layer in layers)
    )
    applied: list[str] = []
    if sample:
        size = model.config.backbone.bev_size
        for i, layer in enumerate(layers):
            layer.cross_bev_attention = SampledValueAttention(layer.cross_bev_attention, size)
            applied.append(f"sampled_values[{i}]")
    return applied
