"""Genome -> planner config: the genome's encoders replace the config's camera and LiDAR encoders.

TransFuser fuses after each of the 4 stages over fixed token grids and runs multi-head attention over each stage's
image channels, so a genome whose stage grids or widths do not fit is rejected up front with the reason.
"""

from __future__ import annotations

import dataclasses

from diffusiondrive_ros.model.config import ModelConfig
from diffusiondrive_ros.model.transfuser import TransfuserBackbone

from .genome import DeployabilityError, Genome, check_deployable, encoder_genome_from_spec


def planner_problems(genome: Genome, cfg: ModelConfig) -> list[str]:
    """Reasons the genome's encoders cannot sit in this planner config (empty: compatible)."""
    out = []
    if genome.lidar is None:
        return ["planner: the genome needs a LiDAR encoder"]
    if genome.image.in_channels != cfg.backbone.image_encoder.in_channels:
        out.append(f"planner: image encoder needs {cfg.backbone.image_encoder.in_channels} input channels")
    if genome.lidar.in_channels != cfg.backbone.lidar_encoder.in_channels:
        out.append(f"planner: LiDAR encoder needs {cfg.backbone.lidar_encoder.in_channels} input channels")
    try:
        image, lidar = genome.image.to_spec(), genome.lidar.to_spec()
    except DeployabilityError as err:
        return out + err.reasons
    heads = cfg.backbone.fusion.n_heads
    for i, c in enumerate(image.stage_channels):
        if c % heads:
            out.append(f"planner: image stage {i + 1} width {c} is not divisible by the {heads} fusion heads")
    backbone = dataclasses.replace(cfg.backbone, image_encoder=image, lidar_encoder=lidar)
    try:
        TransfuserBackbone._check_token_grids(backbone, cfg.camera, cfg.lidar)
    except ValueError as err:
        out.append(f"planner: {err}")
    return out


def planner_config(genome: Genome, cfg: ModelConfig) -> ModelConfig:
    """The planner config with the genome's encoders; raises DeployabilityError with every reason otherwise."""
    check_deployable(genome, planner_problems(genome, cfg))
    backbone = dataclasses.replace(
        cfg.backbone, image_encoder=genome.image.to_spec(), lidar_encoder=genome.lidar.to_spec()
    )
    return cfg.replace(backbone=backbone)


def genome_of_config(cfg: ModelConfig, bits: int = 8) -> Genome:
    """The genome of a config's current encoders (e.g. the tiny planner's, as a search seed)."""
    return Genome(
        image=encoder_genome_from_spec(cfg.backbone.image_encoder, bits),
        lidar=encoder_genome_from_spec(cfg.backbone.lidar_encoder, bits),
        linear_bits=bits,
    )
