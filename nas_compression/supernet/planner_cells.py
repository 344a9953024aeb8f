"""DSO-NAS and EGS supernets as the planner's camera and LiDAR encoders, so both search on the planner loss itself.

A cell encoder keeps the macro layout of the base config's encoder (stem, 4 stage widths and strides: the fusion
transformers, the BEV path and the token grids are built for them) and replaces each stage's blocks by a
*transition* to the stage's width and stride followed by one searchable cell at that width:

- DSO-NAS: the transition of a stride-2 stage is DSO's reduction block (a lambda-scaled sum of a 1x1 and a 3x3
  stride-2 conv), the cell is a completely connected block (:class:`~.dso_net.DSOBlock`, M levels of the 4 DSO
  operations, one lambda per edge). Per encoder the architecture is a :class:`~.dso_net.DSOArch` with
  ``stages=4, blocks_per_stage=1`` whose ``reductions`` hold one entry per stage (empty: no reducing transition).
- EGS: the transition is a fixed ConvBN (as between EGSNet's cells), the cell an :class:`~.egs_net.Cell` whose
  architecture logits alpha are shared by the encoder's 4 cells (as DARTS/EGSNet share them across cells); the
  ensemble Gumbel codes are drawn once per planner forward, in :meth:`EGSCellEncoder.stem`, which the TransFuser
  backbone calls exactly once before running the stages.

Stage ``i`` of a non-reducing transition with a width change (stride 1, e.g. none in ``tiny``) uses a fixed 1x1
ConvBN. The searched cells are never deployed as such: the derived architecture goes through
:func:`~.genome_map.nearest_encoder_genome` into a stage genome that the planner proxy evaluates and exports.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusiondrive_ros.model import build_model
from diffusiondrive_ros.model.config import ModelConfig
from diffusiondrive_ros.model.diffusiondrive import DiffusionDriveModel
from diffusiondrive_ros.model.encoders import StagedEncoder

from ..space.genome import EncoderGenome
from .dso_net import REDUCTION_BRANCHES, BlockArch, DSOArch, DSOBlock, ReductionBlock, lambda_modules
from .egs_net import Cell, EGSArch, EGSSearchState
from .ops import ConvBN

ENCODERS = ("image", "lidar")


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


def pruned_encoder_arch(encoder: DSOCellEncoder) -> DSOArch:
    """The encoder's architecture without its lambda = 0 edges and the operations they isolate."""
    from dataclasses import replace

    from .dso_net import prune_block

    blocks, reductions = [], []
    for i, stage in enumerate(encoder.stages):
        transition, block = stage[0], stage[1]
        keep = _kept(block)
        blocks.append(prune_block(encoder.arch.blocks[i], keep))
        if isinstance(transition, ReductionBlock):
            kept = _kept(transition)
            branches = tuple(b for b in transition.edge_keys if kept[b])
            if not branches:  # a reducing stage keeps its strongest branch
                branches = (transition.edge_keys[int(transition.lam.detach().abs().argmax())],)
            reductions.append(branches)
        else:
            reductions.append(())
    return replace(encoder.arch, blocks=tuple(blocks), reductions=tuple(reductions))


def _kept(module: nn.Module) -> dict:
    lam = module.lam.detach() if module.lam is not None else torch.ones(len(module.edge_keys))
    return {k: bool(v != 0) for k, v in zip(module.edge_keys, lam)}


def rebuild_encoder(encoder: DSOCellEncoder, arch: DSOArch) -> DSOCellEncoder:
    """A searchable encoder of ``arch`` holding the surviving weights and each surviving edge's lambda and momentum."""
    new = DSOCellEncoder(encoder.template, arch, searchable=True)
    own = new.state_dict()
    old = {k: v for k, v in encoder.state_dict().items() if not k.endswith(("lam", "lam_v"))}
    new.load_state_dict({k: v for k, v in old.items() if k in own and own[k].shape == v.shape}, strict=False)
    with torch.no_grad():
        for m_old, m_new in zip(lambda_modules(encoder), lambda_modules(new)):
            pos = {k: i for i, k in enumerate(m_old.edge_keys)}
            for j, key in enumerate(m_new.edge_keys):
                m_new.lam[j] = m_old.lam[pos[key]]
                m_new.lam_v[j] = m_old.lam_v[pos[key]]
    return new.to(next(encoder.parameters()).device)


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
    from ..space.planner import genome_of_config

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
