"""Candidate operations of the cell search spaces and the fixed parts (stem, reductions, head) around the cells.

Separable convolutions are the model's own :class:`~diffusiondrive_ros.model.encoders.SepConv`, so BatchNorm folding,
quantization and the Q/DQ export of part 1 treat them exactly like the encoders' blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusiondrive_ros.model.encoders import SepConv
from diffusiondrive_ros.model.spec import StageSpec

from ..quant.fake import _fold

DSO_OPS = ("sep3", "sep5", "avg3", "max3")  # the DSO-NAS paper's four operations
EGS_OPS = ("sep3", "sep5", "avg3", "max3", "skip")  # DARTS-style edge operations (skip = identity)
OP_KERNELS = {"sep3": 3, "sep5": 5}


def make_op(name: str, channels: int) -> nn.Module:
    """One shape-preserving candidate operation on ``channels`` channels."""
    if name in OP_KERNELS:
        return SepConv(channels, StageSpec("sepconv", 1, channels, 1, OP_KERNELS[name], 1, "none"), 1)
    if name == "avg3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "max3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name == "skip":
        return nn.Identity()
    raise ValueError(f"unknown operation {name!r}; choose one of {sorted(set(DSO_OPS + EGS_OPS))}")


class ConvBN(nn.Sequential):
    """k x k conv (no bias) + BatchNorm, optionally + ReLU; folded by :func:`fold_conv_bn` before quantization."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, relu: bool = False) -> None:
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
        super().__init__(*layers, *([nn.ReLU()] if relu else []))


@torch.no_grad()
def fold_conv_bn(model: nn.Module) -> int:
    """Fold the BatchNorm of every :class:`ConvBN` into its conv (part 1's fold handles the model's own blocks)."""
    count = 0
    for m in model.modules():
        if isinstance(m, ConvBN) and isinstance(m[1], nn.BatchNorm2d):
            _fold(m[0], m[1])
            m[1] = nn.Identity()
            count += 1
    return count


def stem_stride(image_size: int) -> int:
    """Downsample large inputs once in the stem (MNIST 28 -> 14); tiny ones (8x8 digits) keep their resolution."""
    return 2 if image_size >= 16 else 1


class ClassifierHead(nn.Module):
    """Global average pool + Linear (the proxy task's classifier, as in part 1)."""

    def __init__(self, channels: int, num_classes: int = 10) -> None:
        super().__init__()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.mean(dim=(2, 3)))
