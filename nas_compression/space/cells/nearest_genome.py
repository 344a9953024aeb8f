"""The nearest stage genome of a derived cell network, so the genome tasks and the deploy path take DSO/EGS results.

What maps: per stage, the dominant convolution of the cell (sep-conv k3/k5 -> ``sepconv`` with that kernel), the
number of convolutions on the cell's longest path (-> ``depth``, clipped to the space's depths), the residual
(-> ``skip="identity"``). What cannot be expressed as a genome and is dropped: multi-branch DAG wiring (a genome
stage is a chain), pooling operations and skip edges as separate branches, and the 1x1 output projections. Cells
made only of pools/skips map to a depth-1 3x3 sep-conv stage (a genome stage must hold a block).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from ..genome import EncoderGenome, Genome, StageGene
from .dso import INPUT, DSOArch
from .egs import EGSArch
from .ops import DSO_OPS, OP_KERNELS

MAX_DEPTH = 3


def _stage(conv_ops: list[str], chain: int, bits: int) -> StageGene:
    kernel = OP_KERNELS[Counter(conv_ops).most_common(1)[0][0]] if conv_ops else 3
    return StageGene("sepconv", kernel, max(1, min(MAX_DEPTH, chain)), 1.0, 1, "identity", bits)


def _dso_cells(arch: DSOArch) -> list[tuple[list[str], int]]:
    out = []
    for block in arch.blocks:
        name = {d: DSO_OPS[d % len(DSO_OPS)] for d in block.ops}
        depth: dict[int, int] = {INPUT: 0}
        for d in sorted(block.ops):  # convs on the longest path ending at d
            depth[d] = max(depth[s] for s in block.ops[d]) + (name[d] in OP_KERNELS)
        out.append(([name[d] for d in block.ops if name[d] in OP_KERNELS], max(depth.values())))
    return out


def _egs_cells(arch: EGSArch) -> list[tuple[list[str], int]]:
    if arch.cell is None:
        raise ValueError("map a derived EGS cell, not the search space")
    depth = [0]
    for node in arch.cell:
        depth.append(max(depth[p] + (op in OP_KERNELS) for p, op in node))
    convs = [op for node in arch.cell for _, op in node if op in OP_KERNELS]
    return [(convs, max(depth))] * arch.cells


def nearest_encoder_genome(arch: DSOArch | EGSArch, template: EncoderGenome, bits: int = 8) -> EncoderGenome:
    """Map the cells onto one encoder template's 4 stages (cell k of n -> stages k*4//n .. (k+1)*4//n - 1)."""
    cells = _dso_cells(arch) if isinstance(arch, DSOArch) else _egs_cells(arch)
    n = len(cells)
    stages = tuple(_stage(*cells[min(n - 1, i * n // 4)], bits) for i in range(4))
    return replace(template, stages=stages, stem_bits=bits)


def nearest_genome(arch: DSOArch | EGSArch, template: Genome, bits: int = 8) -> Genome:
    """The template with its camera encoder mapped from ``arch`` (LiDAR encoder, if any, unchanged)."""
    return replace(template, image=nearest_encoder_genome(arch, template.image, bits), linear_bits=bits)


def nearest_planner_genome(archs: dict[str, DSOArch | EGSArch], template: Genome, bits: int = 8) -> Genome:
    """A planner genome from one searched cell architecture per encoder (``{"image": ..., "lidar": ...}``)."""
    if template.lidar is None or set(archs) != {"image", "lidar"}:
        raise ValueError("a planner genome needs a searched architecture for both the image and the LiDAR encoder")
    return replace(
        template,
        image=nearest_encoder_genome(archs["image"], template.image, bits),
        lidar=nearest_encoder_genome(archs["lidar"], template.lidar, bits),
        linear_bits=bits,
    )
