"""A genome's precision policy as layer rules for :func:`~nas_compression.quant.fake.assign_precisions`."""

from __future__ import annotations

from torch import nn

from ..space.genome import EncoderGenome, Genome


def encoder_rules(prefix: str, enc: EncoderGenome) -> list[tuple[str, type[nn.Module], int]]:
    """Stem conv at ``stem_bits``; every conv of stage i (``layer{i+1}``) at that stage's bits."""
    rules = [(f"{prefix}.conv1", nn.Conv2d, enc.stem_bits)]
    rules += [(f"{prefix}.layer{i + 1}", nn.Conv2d, s.bits) for i, s in enumerate(enc.stages)]
    return rules


def classifier_rules(genome: Genome) -> list[tuple[str, type[nn.Module], int]]:
    return encoder_rules("encoder", genome.image) + [("classifier", nn.Linear, genome.linear_bits)]


def planner_rules(genome: Genome) -> list[tuple[str, type[nn.Module], int]]:
    """Encoders per the genome; the fusion transformers' Linears at ``linear_bits``; the rest stays float32."""
    rules = encoder_rules("backbone.image_encoder", genome.image)
    if genome.lidar is not None:
        rules += encoder_rules("backbone.lidar_encoder", genome.lidar)
    return rules + [("backbone.transformers", nn.Linear, genome.linear_bits)]
