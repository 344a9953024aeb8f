"""Encoders built from an :class:`EncoderSpec`: stem + 4 stages, parameter names in the torchvision/timm ResNet layout.

``conv1``/``bn1``/``maxpool`` form the stem and ``layer1``..``layer4`` the stages, so upstream ResNet-34 weights load
unchanged; MBConv and separable-conv blocks extend the same layout for the NAS search space.
"""

from __future__ import annotations

import torch
from torch import nn

from .spec import EncoderSpec, StageSpec


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout)


class _Downsample(nn.Sequential):
    """1x1 strided projection of the residual (``downsample.0`` conv, ``downsample.1`` BN as in torchvision)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


def _residual(cin: int, cout: int, stride: int, skip: str) -> nn.Module | None:
    if skip == "none":
        return None
    if cin == cout and stride == 1:
        return nn.Identity()
    return _Downsample(cin, cout, stride)


class BasicBlock(nn.Module):
    """Two k x k convs (ResNet-18/34 block)."""

    def __init__(self, cin: int, stage: StageSpec, stride: int) -> None:
        super().__init__()
        cout, k = stage.width, stage.kernel
        self.conv1, self.bn1 = _conv_bn(cin, cout, k, stride)
        self.conv2, self.bn2 = _conv_bn(cout, cout, k)
        self.relu = nn.ReLU(inplace=True)
        res = _residual(cin, cout, stride, stage.skip)
        self.downsample = res if isinstance(res, _Downsample) else None
        self.has_skip = res is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.has_skip:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, k x k (strided), 1x1 expand x4 (ResNet-50 block)."""

    expansion = 4

    def __init__(self, cin: int, stage: StageSpec, stride: int) -> None:
        super().__init__()
        width, cout = stage.width, stage.out_channels
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, stage.kernel, stride)
        self.conv3, self.bn3 = _conv_bn(width, cout, 1)
        self.relu = nn.ReLU(inplace=True)
        res = _residual(cin, cout, stride, stage.skip)
        self.downsample = res if isinstance(res, _Downsample) else None
        self.has_skip = res is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.has_skip:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return self.relu(out)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise (strided), 1x1 linear projection; skip if shapes match."""

    def __init__(self, cin: int, stage: StageSpec, stride: int) -> None:
        super().__init__()
        hidden, cout = cin * max(1, stage.expansion), stage.width
        self.conv_pw, self.bn1 = _conv_bn(cin, hidden, 1)
        self.conv_dw, self.bn2 = _conv_bn(hidden, hidden, stage.kernel, stride, groups=hidden)
        self.conv_pwl, self.bn3 = _conv_bn(hidden, cout, 1)
        self.act = nn.ReLU6(inplace=True)
        self.has_skip = stage.skip == "identity" and stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv_pw(x)))
        out = self.act(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_skip else out


class SepConv(nn.Module):
    """k x k depthwise (strided) + 1x1 pointwise; identity skip if shapes match."""

    def __init__(self, cin: int, stage: StageSpec, stride: int) -> None:
        super().__init__()
        cout = stage.width
        self.conv_dw, self.bn1 = _conv_bn(cin, cin, stage.kernel, stride, groups=cin)
        self.conv_pw, self.bn2 = _conv_bn(cin, cout, 1)
        self.relu = nn.ReLU(inplace=True)
        self.has_skip = stage.skip == "identity" and stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv_dw(x)))
        out = self.bn2(self.conv_pw(out))
        return self.relu(out + x if self.has_skip else out)


BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "mbconv": MBConv,
    "sepconv": SepConv,
}


class StagedEncoder(nn.Module):
    """Stem (stride-2 conv, BN, ReLU, max-pool) + ``layer1``..``layer4``: the interface TransFuser fuses through
    (:meth:`stem`, :attr:`stages`). Subclasses call :meth:`build_stem` and add the four ``layer`` modules."""

    def build_stem(self, in_channels: int, width: int, kernel: int) -> None:
        self.conv1, self.bn1 = _conv_bn(in_channels, width, kernel, stride=2)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    @property
    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.act1(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features after each of the 4 stages (no fusion)."""
        feats, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class Encoder(StagedEncoder):
    """The encoder an :class:`EncoderSpec` describes (ResNet-34 is one spec)."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        self.spec = spec
        self.build_stem(spec.in_channels, spec.stem_width, spec.stem_kernel)
        cin = spec.stem_width
        for i, stage in enumerate(spec.stages):
            blocks = []
            for j in range(stage.depth):
                blocks.append(BLOCKS[stage.block](cin, stage, stage.stride if j == 0 else 1))
                cin = stage.out_channels
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def build_encoder(spec: EncoderSpec) -> Encoder:
    return Encoder(spec)
