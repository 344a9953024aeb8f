"""The search space as data: genomes, their validation against a deployment target, sampling and mutation."""

from .genome import (
    PRECISIONS,
    DeployabilityError,
    EncoderGenome,
    Genome,
    StageGene,
    genome_from_json,
    resnet_genome,
)

__all__ = [
    "PRECISIONS",
    "DeployabilityError",
    "EncoderGenome",
    "Genome",
    "StageGene",
    "genome_from_json",
    "resnet_genome",
]
