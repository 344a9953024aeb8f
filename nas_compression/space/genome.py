"""Genome: an encoder described stage by stage (op, kernel, depth, width multiplier, skip) plus a precision per block.

A genome is plain data. It serialises to canonical JSON, hashes stably (sha256 of that JSON), and maps onto the
model's :class:`~diffusiondrive_ros.model.spec.EncoderSpec`, so the planner builder turns it into real encoders.
Precisions are the *deployable* set: 16 = FP16, 8 = INT8 Q/DQ, 4 = INT4 weight-only (Linear/MatMul only), and 2 is a
research flag. :func:`check_deployable` lists every reason a genome cannot be deployed; nothing is silently changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from diffusiondrive_ros.model.spec import BLOCK_TYPES, SKIP_TYPES, EncoderSpec, StageSpec, resnet_spec

GENOME_VERSION = 1
PRECISIONS = (16, 8, 4, 2)  # bits a genome may name; see DEPLOYABLE_* for what each layer kind can deploy
DEPLOYABLE_CONV_BITS = (16, 8)  # INT4 is weight-only for MatMul/Linear in TensorRT and ONNX Runtime
DEPLOYABLE_LINEAR_BITS = (16, 8, 4)
KERNELS = (3, 5, 7)
MBCONV_EXPANSIONS = (3, 6)
PRECISION_NAMES = {16: "fp16", 8: "int8", 4: "int4-weight-only", 2: "int2 (research only)"}


class DeployabilityError(ValueError):
    """The genome asks for something the deployment target cannot run; ``reasons`` lists every problem."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("genome is not deployable: " + "; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class StageGene:
    """One encoder stage: ``depth`` blocks of ``block`` type; ``bits`` is the precision of all its convolutions."""

    block: str = "basic"
    kernel: int = 3
    depth: int = 1
    width_mult: float = 1.0
    expansion: int = 1  # MBConv only: 3 or 6
    skip: str = "identity"
    bits: int = 8


@dataclass(frozen=True)
class EncoderGenome:
    """Stem + 4 stages. ``base_widths``/``strides`` fix the macro layout; stage width = round(base * width_mult)."""

    in_channels: int = 3
    stem_width: int = 16
    stem_kernel: int = 5
    stem_bits: int = 8
    base_widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    strides: tuple[int, int, int, int] = (1, 2, 2, 2)
    stages: tuple[StageGene, ...] = field(default_factory=lambda: tuple(StageGene() for _ in range(4)))

    def stage_width(self, i: int) -> int:
        return max(1, int(round(self.base_widths[i] * self.stages[i].width_mult)))

    def to_spec(self) -> EncoderSpec:
        """The model builder's spec (raises DeployabilityError first if the architecture is invalid)."""
        reasons = architecture_problems(self, "encoder")
        if reasons:
            raise DeployabilityError(reasons)
        stages = tuple(
            StageSpec(
                block=s.block,
                depth=s.depth,
                width=self.stage_width(i),
                stride=self.strides[i],
                kernel=s.kernel,
                expansion=s.expansion,
                skip=s.skip,
            )
            for i, s in enumerate(self.stages)
        )
        return EncoderSpec(self.in_channels, self.stem_width, self.stem_kernel, stages)

    def with_bits(self, stem_bits: int, stage_bits: tuple[int, ...]) -> EncoderGenome:
        stages = tuple(replace(s, bits=b) for s, b in zip(self.stages, stage_bits))
        return replace(self, stem_bits=stem_bits, stages=stages)


@dataclass(frozen=True)
class Genome:
    """A candidate: the camera encoder, optionally the LiDAR encoder, and the precision of the Linear layers."""

    image: EncoderGenome = field(default_factory=EncoderGenome)
    lidar: EncoderGenome | None = None
    linear_bits: int = 8  # the classifier (proxy task) / fusion Linears (planner)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version"] = GENOME_VERSION
        return _plain(d)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, separators=None if indent else (",", ":"))

    @property
    def hash(self) -> str:
        """Stable identity: sha256 of the canonical JSON (sorted keys, no whitespace), first 16 hex digits."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def encoders(self) -> list[tuple[str, EncoderGenome]]:
        return [("image", self.image)] + ([("lidar", self.lidar)] if self.lidar is not None else [])

    def summary(self) -> str:
        """One line: per encoder, the stages as block/kernel/depth/width-mult@bits, then the Linear layers' bits."""
        parts = []
        for name, enc in self.encoders():
            stages = " ".join(f"{_block_name(s)}{s.kernel}x{s.depth}w{s.width_mult:g}@{s.bits}" for s in enc.stages)
            parts.append(f"{name}: {stages}")
        return "; ".join(parts) + f"; linear@{self.linear_bits}"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Genome:
        return genome_from_json(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_dict(cls, d: dict) -> Genome:
        d = dict(d)
        version = d.pop("version", GENOME_VERSION)
        if version != GENOME_VERSION:
            raise ValueError(f"genome format version {version} is not supported (expected {GENOME_VERSION})")
        unknown = set(d) - {"image", "lidar", "linear_bits"}
        if unknown:
            raise ValueError(f"unknown genome key(s) {sorted(unknown)}")
        lidar = d.get("lidar")
        return cls(
            image=_encoder_from_dict(d["image"], "image"),
            lidar=None if lidar is None else _encoder_from_dict(lidar, "lidar"),
            linear_bits=int(d.get("linear_bits", 8)),
        )


def _block_name(stage: StageGene) -> str:
    return {"basic": "basic", "bottleneck": "bneck", "sepconv": "sep"}.get(stage.block, f"mb{stage.expansion}-")


def genome_from_json(text: str) -> Genome:
    return Genome.from_dict(json.loads(text))


def _encoder_from_dict(d: dict, where: str) -> EncoderGenome:
    d = dict(d)
    allowed = {"in_channels", "stem_width", "stem_kernel", "stem_bits", "base_widths", "strides", "stages"}
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown encoder key(s) {sorted(unknown)}")
    stage_keys = {"block", "kernel", "depth", "width_mult", "expansion", "skip", "bits"}
    stages = []
    for i, s in enumerate(d.pop("stages")):
        bad = set(s) - stage_keys
        if bad:
            raise ValueError(f"{where}.stages[{i}]: unknown key(s) {sorted(bad)}")
        stages.append(StageGene(**s))
    for key in ("base_widths", "strides"):
        if key in d:
            d[key] = tuple(int(v) for v in d[key])
    return EncoderGenome(**d, stages=tuple(stages))


def _plain(obj):  # noqa: ANN001, ANN202 - JSON-ready copy (tuples -> lists)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def architecture_problems(enc: EncoderGenome, where: str) -> list[str]:
    """Everything structurally wrong with one encoder genome (empty list: buildable)."""
    out = []
    if len(enc.stages) != 4 or len(enc.base_widths) != 4 or len(enc.strides) != 4:
        return [f"{where}: an encoder has exactly 4 stages, base widths and strides (TransFuser fuses after each)"]
    if enc.stem_kernel % 2 != 1 or enc.stem_width < 1:
        out.append(f"{where}.stem: kernel must be odd and width >= 1 (got k={enc.stem_kernel}, w={enc.stem_width})")
    for i, s in enumerate(enc.stages):
        at = f"{where}.stages[{i}]"
        if s.block not in BLOCK_TYPES:
            out.append(f"{at}: block {s.block!r} is not one of {BLOCK_TYPES}")
        if s.kernel not in KERNELS:
            out.append(f"{at}: kernel {s.kernel} is not one of {KERNELS}")
        if s.depth < 1:
            out.append(f"{at}: depth must be >= 1 (got {s.depth})")
        if s.width_mult <= 0:
            out.append(f"{at}: width_mult must be > 0 (got {s.width_mult})")
        if s.skip not in SKIP_TYPES:
            out.append(f"{at}: skip {s.skip!r} is not one of {SKIP_TYPES}")
        if s.block == "mbconv" and s.expansion not in MBCONV_EXPANSIONS:
            out.append(f"{at}: MBConv expansion must be one of {MBCONV_EXPANSIONS} (got {s.expansion})")
        if s.block != "mbconv" and s.expansion != 1:
            out.append(f"{at}: expansion applies to mbconv only; {s.block} needs expansion 1 (got {s.expansion})")
        if enc.strides[i] not in (1, 2):
            out.append(f"{at}: stride must be 1 or 2 (got {enc.strides[i]})")
    return out


def precision_problems(genome: Genome) -> list[str]:
    """Every precision the target cannot deploy, with the reason."""
    out = []

    def check(bits: int, where: str, allowed: tuple[int, ...], kind: str) -> None:
        if bits not in PRECISIONS:
            out.append(f"{where}: {bits} bits is not a precision of the search space {PRECISIONS}")
        elif bits == 2:
            out.append(f"{where}: 2-bit is a research flag only; no deployment backend runs it")
        elif bits not in allowed:
            out.append(
                f"{where}: {PRECISION_NAMES[bits]} is weight-only for Linear/MatMul; {kind} cannot deploy it "
                f"(TensorRT/ONNX Runtime have no INT4 convolution) - use one of {allowed}"
            )

    for name, enc in genome.encoders():
        check(enc.stem_bits, f"{name}.stem", DEPLOYABLE_CONV_BITS, "a convolution")
        for i, s in enumerate(enc.stages):
            check(s.bits, f"{name}.stages[{i}]", DEPLOYABLE_CONV_BITS, "a convolution")
    check(genome.linear_bits, "linear", DEPLOYABLE_LINEAR_BITS, "a Linear layer")
    return out


def check_deployable(genome: Genome, extra_problems: list[str] | None = None) -> None:
    """Raise DeployabilityError listing every architecture and precision problem (plus target-specific ones)."""
    reasons = []
    for name, enc in genome.encoders():
        reasons += architecture_problems(enc, name)
    reasons += precision_problems(genome)
    reasons += extra_problems or []
    if reasons:
        raise DeployabilityError(reasons)


def encoder_genome_from_spec(spec: EncoderSpec, bits: int = 8) -> EncoderGenome:
    """The genome of an existing spec (width multipliers 1 over the spec's own widths)."""
    stages = tuple(
        StageGene(s.block, s.kernel, s.depth, 1.0, s.expansion if s.block == "mbconv" else 1, s.skip, bits)
        for s in spec.stages
    )
    return EncoderGenome(
        in_channels=spec.in_channels,
        stem_width=spec.stem_width,
        stem_kernel=spec.stem_kernel,
        stem_bits=bits,
        base_widths=tuple(s.width for s in spec.stages),
        strides=tuple(s.stride for s in spec.stages),
        stages=stages,
    )


def resnet_genome(name: str = "resnet34", bits: int = 8, lidar: bool = True) -> Genome:
    """ResNet-18/34/50 camera (and LiDAR) encoders as a genome; ``to_spec`` reproduces ``resnet_spec`` exactly."""
    image = encoder_genome_from_spec(resnet_spec(name, 3), bits)
    lid = encoder_genome_from_spec(resnet_spec(name, 1), bits) if lidar else None
    return Genome(image=image, lidar=lid, linear_bits=bits)
