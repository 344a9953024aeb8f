"""Declarative encoder specs: the one description of a backbone that the model builder and NAS genomes share.

A ResNet-34 is one spec; a searched backbone is another. Pure data, no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

BLOCK_TYPES = ("basic", "bottleneck", "mbconv", "sepconv")
SKIP_TYPES = ("identity", "none")


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``depth`` blocks of one type; the first block applies ``stride`` and changes the width."""

    block: str = "basic"
    depth: int = 2
    width: int = 64  # output channels of the stage (for bottleneck: the inner width; output = width * 4)
    stride: int = 2
    kernel: int = 3
    expansion: int = 1  # MBConv expansion ratio (3 or 6); unused by basic/bottleneck
    skip: str = "identity"

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise ValueError(f"unknown block type {self.block!r}; expected one of {BLOCK_TYPES}")
        if self.skip not in SKIP_TYPES:
            raise ValueError(f"unknown skip type {self.skip!r}; expected one of {SKIP_TYPES}")
        if self.depth < 1 or self.width < 1 or self.stride not in (1, 2) or self.kernel % 2 != 1:
            raise ValueError(f"invalid stage spec {self}")

    @property
    def out_channels(self) -> int:
        return self.width * 4 if self.block == "bottleneck" else self.width


@dataclass(frozen=True)
class EncoderSpec:
    """A stem (conv k x k stride 2 + BN + ReLU + 3x3 max-pool stride 2) followed by 4 stages."""

    in_channels: int = 3
    stem_width: int = 64
    stem_kernel: int = 7
    stages: tuple[StageSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.stages) != 4:
            raise ValueError(f"an encoder has exactly 4 stages (TransFuser fuses after each); got {len(self.stages)}")

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(s.out_channels for s in self.stages)

    @property
    def stage_strides(self) -> tuple[int, ...]:
        """Cumulative stride at the output of each stage (the stem downsamples by 4)."""
        out, total = [], 4
        for s in self.stages:
            total *= s.stride
            out.append(total)
        return tuple(out)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderSpec:
        if "preset" in d:
            return resnet_spec(d["preset"], int(d.get("in_channels", 3)), float(d.get("width_mult", 1.0)))
        stages = tuple(StageSpec(**s) for s in d["stages"])
        return cls(
            in_channels=int(d.get("in_channels", 3)),
            stem_width=int(d.get("stem_width", 64)),
            stem_kernel=int(d.get("stem_kernel", 7)),
            stages=stages,
        )


_RESNET_LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def resnet_spec(name: str, in_channels: int = 3, width_mult: float = 1.0) -> EncoderSpec:
    """The classic ResNet layouts (torchvision/timm parameter names) as specs."""
    if name not in _RESNET_LAYOUTS:
        raise ValueError(f"unknown ResNet preset {name!r}; expected one of {sorted(_RESNET_LAYOUTS)}")
    block, depths = _RESNET_LAYOUTS[name]
    widths = [max(8, int(round(w * width_mult))) for w in (64, 128, 256, 512)]
    stages = tuple(
        StageSpec(block=block, depth=d, width=w, stride=1 if i == 0 else 2)
        for i, (d, w) in enumerate(zip(depths, widths))
    )
    return EncoderSpec(in_channels=in_channels, stem_width=widths[0], stages=stages)
