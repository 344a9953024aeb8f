"""Random genomes and mutations over the choices of a :class:`SearchSpace` (EAT-NAS/JASQ-style stage space)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .genome import EncoderGenome, Genome, StageGene

OPS = (("basic", 1), ("bottleneck", 1), ("mbconv", 3), ("mbconv", 6), ("sepconv", 1))


@dataclass(frozen=True)
class SearchSpace:
    """Choices per stage; ``conv_bits``/``linear_bits`` are the precisions the search may pick."""

    ops: tuple[tuple[str, int], ...] = OPS
    kernels: tuple[int, ...] = (3, 5, 7)
    depths: tuple[int, ...] = (1, 2, 3)
    width_mults: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
    skips: tuple[str, ...] = ("identity", "none")
    conv_bits: tuple[int, ...] = (16, 8)
    linear_bits: tuple[int, ...] = (16, 8, 4)


# A narrower space for CPU-time planner searches: no deeper or much wider stages than a hand-made slim encoder,
# so every proxy training run stays cheap and the search spends its budget near the fast end.
COMPACT_SPACE = SearchSpace(kernels=(3, 5), depths=(1, 2), width_mults=(0.5, 0.75, 1.0, 1.5))
SPACES = {"default": SearchSpace(), "compact": COMPACT_SPACE}


def random_stage(rng: np.random.Generator, space: SearchSpace) -> StageGene:
    block, expansion = space.ops[rng.integers(len(space.ops))]
    return StageGene(
        block=block,
        kernel=int(rng.choice(space.kernels)),
        depth=int(rng.choice(space.depths)),
        width_mult=float(rng.choice(space.width_mults)),
        expansion=expansion,
        skip=str(rng.choice(space.skips)),
        bits=int(rng.choice(space.conv_bits)),
    )


def random_encoder(rng: np.random.Generator, space: SearchSpace, template: EncoderGenome) -> EncoderGenome:
    """Random stages inside the template's macro layout (input channels, stem, base widths, strides)."""
    return replace(
        template,
        stem_bits=int(rng.choice(space.conv_bits)),
        stages=tuple(random_stage(rng, space) for _ in range(4)),
    )


def random_policy(rng: np.random.Generator, space: SearchSpace, template: Genome) -> Genome:
    """Policy-only search: the template's architecture with random precisions."""

    def enc(e: EncoderGenome) -> EncoderGenome:
        return e.with_bits(int(rng.choice(space.conv_bits)), tuple(int(rng.choice(space.conv_bits)) for _ in e.stages))

    return replace(
        template,
        image=enc(template.image),
        lidar=None if template.lidar is None else enc(template.lidar),
        linear_bits=int(rng.choice(space.linear_bits)),
    )


def random_genome(rng: np.random.Generator, space: SearchSpace, template: Genome) -> Genome:
    return replace(
        template,
        image=random_encoder(rng, space, template.image),
        lidar=None if template.lidar is None else random_encoder(rng, space, template.lidar),
        linear_bits=int(rng.choice(space.linear_bits)),
    )


def _mutate_stage(stage: StageGene, rng: np.random.Generator, space: SearchSpace) -> StageGene:
    """Resample one architecture choice of a stage."""
    what = rng.choice(["op", "kernel", "depth", "width", "skip"])
    if what == "op":
        block, expansion = space.ops[rng.integers(len(space.ops))]
        return replace(stage, block=block, expansion=expansion)
    if what == "kernel":
        return replace(stage, kernel=int(rng.choice(space.kernels)))
    if what == "depth":
        return replace(stage, depth=int(rng.choice(space.depths)))
    if what == "width":
        return replace(stage, width_mult=float(rng.choice(space.width_mults)))
    return replace(stage, skip=str(rng.choice(space.skips)))


def _mutate_bits(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome:
    """Resample one bit width: a stage's, a stem's, or the Linear layers'."""
    encoders = genome.encoders()
    slot = int(rng.integers(len(encoders) * 5 + 1))
    if slot == len(encoders) * 5:
        return replace(genome, linear_bits=int(rng.choice(space.linear_bits)))
    name, enc = encoders[slot // 5]
    bits = int(rng.choice(space.conv_bits))
    if slot % 5 == 4:
        enc = replace(enc, stem_bits=bits)
    else:
        stages = list(enc.stages)
        stages[slot % 5] = replace(stages[slot % 5], bits=bits)
        enc = replace(enc, stages=tuple(stages))
    return replace(genome, **{name: enc})


def mutate(genome: Genome, rng: np.random.Generator, space: SearchSpace, policy_only: bool = False) -> Genome:
    """JASQ mutation: resample one architecture choice of one stage (unless policy-only) and one bit width."""
    out = genome
    if not policy_only:
        encoders = out.encoders()
        name, enc = encoders[int(rng.integers(len(encoders)))]
        i = int(rng.integers(4))
        stages = list(enc.stages)
        stages[i] = _mutate_stage(stages[i], rng, space)
        out = replace(out, **{name: replace(enc, stages=tuple(stages))})
    return _mutate_bits(out, rng, space)
