"""Candidate operations of the cell search spaces and the fixed parts (stem, reductions, head) around the cells.

Separable convolutions are the model's own :class:`~diffusiondrive_ros.model.encoders.SepConv` and every other
convolution is a :class:`ConvBN`, so BatchNorm folding, fake quantization and the Q/DQ export of ``quant`` treat the
derived cell networks exactly like the planner's encoders.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from diffusiondrive_ros.model.encoders import SepConv
from diffusiondrive_ros.model.spec import StageSpec

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
    """k x k conv (no bias) + BatchNorm, optionally + ReLU (``quant.fake.fold_batchnorm`` folds it)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, relu: bool = False) -> None:
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
        super().__init__(*layers, *([nn.ReLU()] if relu else []))


def stacked_stages(
    in_channels: int,
    image_size: int,
    channels: int,
    stages: int,
    stage: Callable[[int, int], list[nn.Module]],
    reduction: Callable[[int, int], nn.Module],
) -> tuple[ConvBN, list[nn.Module], int]:
    """The stem and ``stages`` stages of cells (``stage(index, width)``), each but the last followed by a reduction
    doubling the width (``reduction(index, width)``), built in network order; returns (stem, cells, final width)."""
    stem = ConvBN(in_channels, channels, 3, stem_stride(image_size), relu=True)
    cells: list[nn.Module] = []
    c = channels
    for s in range(stages):
        cells += stage(s, c)
        if s < stages - 1:
            cells.append(reduction(s, c))
            c *= 2
    return stem, cells, c


def stem_stride(image_size: int) -> int:
    """Downsample large inputs once in the stem (MNIST 28 -> 14); tiny ones (8x8 digits) keep their resolution."""
    return 2 if image_size >= 16 else 1


class ClassifierHead(nn.Module):
    """Global average pool + Linear, the head of the classification task's networks."""

    def __init__(self, channels: int, num_classes: int = 10) -> None:
        super().__init__()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.mean(dim=(2, 3)))
