"""DSO-NAS and EGS supernets as the planner's camera and LiDAR encoders, so both search on the planner loss itself.

A cell encoder keeps the macro layout of the base config's encoder (stem, 4 stage widths and strides: the fusion
transformers, the BEV path and the token grids are built for them) and replaces each stage's blocks by a
*transition* to the stage's width and stride followed by one searchable cell at that width:

- DSO-NAS: the transition of a stride-2 stage is DSO's reduction block (a lambda-scaled sum of a 1x1 and a 3x3
  stride-2 conv), the cell is a completely connected block (:class:`~.dso.DSOBlock`, M levels of the 4 DSO
  operations, one lambda per edge). Per encoder the architecture is a :class:`~.dso.DSOArch` with
  ``stages=4, blocks_per_stage=1`` whose ``reductions`` hold one entry per stage (empty: no reducing transition).
- EGS: the transition is a fixed ConvBN (as between EGSNet's cells), the cell an :class:`~.egs.Cell` whose
  architecture logits alpha are shared by the encoder's 4 cells (as DARTS/EGSNet share them across cells); the
  ensemble Gumbel codes are drawn once per planner forward, in :meth:`EGSCellEncoder.stem`, which the TransFuser
  backbone calls exactly once before running the stages.

Stage ``i`` of a non-reducing transition with a width change (stride 1, e.g. none in ``tiny``) uses a fixed 1x1
ConvBN. The searched cells are never deployed as such: the derived architecture goes through
:func:`~.nearest_genome.nearest_encoder_genome` into a stage genome that the planner task evaluates and exports.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from diffusiondrive_ros.model import build_model
from diffusiondrive_ros.model.config import ModelConfig
from diffusiondrive_ros.model.diffusiondrive import DiffusionDriveModel
from diffusiondrive_ros.model.encoders import StagedEncoder

from ..genome import EncoderGenome
from ..planner import genome_of_config
from .dso import (
    REDUCTION_BRANCHES,
    BlockArch,
    DSOArch,
    DSOBlock,
    ReductionBlock,
    carry_over,
    kept_branches,
    kept_edges,
    prune_block,
)
from .egs import Cell, EGSArch, EGSSearchState
from .ops import ConvBN


def _stage_io(enc: EncoderGenome) -> list[tuple[int, int, int]]:
    """(input width, output width, stride) of the template's 4 stages at width multiplier 1."""
    widths = [enc.stem_width, *enc.base_widths]
    return [(widths[i], widths[i + 1], enc.strides[i]) for i in range(4)]


def _fixed_transition(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return ConvBN(cin, cout, 1 if stride == 1 else 3, stride, relu=True)


class _CellEncoderBase(StagedEncoder):
    """The planner encoder's own stem + searched ``layer1``..``layer4`` (the interface TransFuser uses)."""

    def _build_stem(self, enc: EncoderGenome) -> None:
        self.build_stem(enc.in_channels, enc.stem_width, enc.stem_kernel)


# -- DSO-NAS -------------------------------------------------------------------------------------------------------
def complete_dso_arch(enc: EncoderGenome, input_size: int, levels: int = 2) -> DSOArch:
    """Every stage a complete M-level block; every stride-2 transition DSO's two-branch reduction block."""
    reductions = tuple(REDUCTION_BRANCHES if s == 2 else () for s in enc.strides)
    blocks = tuple(BlockArch.complete(levels) for _ in range(4))
    return DSOArch(enc.in_channels, input_size, enc.stem_width, levels, 4, 1, blocks, reductions)


class DSOCellEncoder(_CellEncoderBase):
    """The template's stem, then per stage: (reduction block | fixed transition) -> DSO block (lambda per edge)."""

    def __init__(self, template: EncoderGenome, arch: DSOArch, searchable: bool = True) -> None:
        super().__init__()
        if len(arch.blocks) != 4 or len(arch.reductions) != 4:
            raise ValueError("a planner DSO arch has one block and one reduction entry per stage (4 each)")
        self.template, self.arch = template, arch
        self._build_stem(template)
        for i, (cin, cout, stride) in enumerate(_stage_io(template)):
            if stride == 2:
                if not arch.reductions[i]:
                    raise ValueError(f"stage {i + 1} reduces (stride 2) and needs at least one reduction branch")
                transition: nn.Module = ReductionBlock(cin, cout, arch.reductions[i], searchable)
            else:
                transition = _fixed_transition(cin, cout, stride)
            self.add_module(f"layer{i + 1}", nn.Sequential(transition, DSOBlock(cout, arch.blocks[i], searchable)))

    def pruned_arch(self) -> DSOArch:
        """The encoder's architecture without its lambda = 0 edges and the operations they isolate."""
        blocks, reductions = [], []
        for i, (transition, block) in enumerate(self.stages):
            blocks.append(prune_block(self.arch.blocks[i], kept_edges(block)))
            reductions.append(kept_branches(transition) if isinstance(transition, ReductionBlock) else ())
        return replace(self.arch, blocks=tuple(blocks), reductions=tuple(reductions))

    def rebuilt(self, arch: DSOArch) -> DSOCellEncoder:
        """A searchable encoder of ``arch`` with the surviving weights and each surviving edge's lambda and momentum."""
        new = carry_over(self, DSOCellEncoder(self.template, arch, searchable=True))
        return new.to(next(self.parameters()).device)


# -- EGS -----------------------------------------------------------------------------------------------------------
class _CodeBox:
    """The Gumbel codes of the current forward, shared by the encoder and its stages (plain object: no submodule)."""

    def __init__(self) -> None:
        self.codes: list[torch.Tensor] | None = None


class _EGSStage(nn.Module):
    def __init__(self, transition: nn.Module, cell: Cell, box: _CodeBox) -> None:
        super().__init__()
        self.transition, self.cell = transition, cell
        self._box = box

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cell(self.transition(x), self._box.codes)


class EGSCellEncoder(EGSSearchState, _CellEncoderBase):
    """The template's stem, then per stage: fixed transition -> EGS cell; alpha shared by the 4 cells."""

    def __init__(self, template: EncoderGenome, arch: EGSArch, seed: int = 0) -> None:
        super().__init__()
        if arch.cells != 4:
            raise ValueError("a planner EGS arch has one cell per stage (cells=4)")
        self.template, self.arch = template, arch
        self._box = _CodeBox()
        self._build_stem(template)
        for i, (cin, cout, stride) in enumerate(_stage_io(template)):
            stage = _EGSStage(_fixed_transition(cin, cout, stride), Cell(cout, arch), self._box)
            self.add_module(f"layer{i + 1}", stage)
        self.init_search(arch, seed)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Also draws this forward's ensemble Gumbel codes (one draw per planner forward, for all 4 cells)."""
        if self.searchable:
            self._box.codes = self.sample_weights()
        return super().stem(x)


def egs_space(enc: EncoderGenome, input_size: int, nodes: int = 3, m: int = 2) -> EGSArch:
    return EGSArch(enc.in_channels, input_size, enc.stem_width, nodes, 4, m)


# -- the planner around them ---------------------------------------------------------------------------------------
def encoder_templates(cfg: ModelConfig) -> dict[str, tuple[EncoderGenome, int]]:
    """Per encoder: the base config's encoder genome (macro layout) and its input height."""
    g = genome_of_config(cfg, 8)
    return {"image": (g.image, cfg.camera.height), "lidar": (g.lidar, cfg.lidar.size)}


def planner_with_encoders(cfg: ModelConfig, encoders: dict[str, nn.Module], seed: int) -> DiffusionDriveModel:
    """The base planner (seeded) with its camera and LiDAR encoders replaced by ``encoders``."""
    model = build_model(cfg, seed=seed)
    model.backbone.image_encoder = encoders["image"]
    model.backbone.lidar_encoder = encoders["lidar"]
    return model


def cell_encoders(model: DiffusionDriveModel) -> dict[str, nn.Module]:
    return {"image": model.backbone.image_encoder, "lidar": model.backbone.lidar_encoder}
