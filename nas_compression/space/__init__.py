"""The search spaces: genomes (data, validated against the deployment target, sampled and mutated) and the cell
supernets of the differentiable searches (``space.cells``)."""

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
