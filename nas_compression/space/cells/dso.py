"""DSO-NAS networks: completely connected blocks whose every edge carries a scaling factor lambda.

A block has ``levels`` (M) levels of the N operations in :data:`~.ops.DSO_OPS`. The input of an operation is the
lambda-scaled sum of the block input and all operations of earlier levels; the block output is a 1x1 conv of the
lambda-scaled sum of all operations, plus the block input (residual). A reduction block is the lambda-scaled sum of a
1x1 and a 3x3 stride-2 conv. The architecture is plain data (:class:`DSOArch`): pruning returns a smaller
architecture and the network is rebuilt from it, so the searched supernet, the pruned supernet and the final network
(``searchable=False``: no lambda, plain sums) are the same code. Every searchable DSO network (:class:`DSONet`, the
planner's :class:`~.planner.DSOCellEncoder`) has ``arch``, ``pruned_arch()`` and ``rebuilt(arch)``, which is all the
DSO-NAS strategy needs of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .ops import DSO_OPS, ClassifierHead, ConvBN, make_op, stacked_stages

INPUT = -1  # source id of the block input
OUTPUT = -2  # destination id of the block output projection
REDUCTION_BRANCHES = ("conv1", "conv3")


@dataclass(frozen=True)
class BlockArch:
    """``ops``: {op id: source ids}; op id = level * N + index into DSO_OPS; ``outputs``: op ids summed at the end."""

    ops: dict[int, tuple[int, ...]]
    outputs: tuple[int, ...]

    @classmethod
    def complete(cls, levels: int) -> BlockArch:
        n = len(DSO_OPS)
        ops = {lv * n + k: (INPUT,) + tuple(range(lv * n)) for lv in range(levels) for k in range(n)}
        return cls(ops, tuple(sorted(ops)))

    def edges(self) -> list[tuple[int, int]]:
        """(destination, source) for every edge, operation inputs first, then the output edges."""
        return [(d, s) for d in sorted(self.ops) for s in self.ops[d]] + [(OUTPUT, s) for s in self.outputs]


@dataclass(frozen=True)
class DSOArch:
    """Macro layout (stem width, stages of blocks, reductions doubling the width) plus each cell's surviving edges."""

    in_channels: int
    image_size: int
    channels: int
    levels: int
    stages: int
    blocks_per_stage: int
    blocks: tuple[BlockArch, ...]
    reductions: tuple[tuple[str, ...], ...]

    @classmethod
    def complete(
        cls, in_channels: int, image_size: int, channels: int = 8, levels: int = 2, stages: int = 2, blocks: int = 1
    ) -> DSOArch:
        if min(channels, levels, stages, blocks) < 1:
            raise ValueError("channels, levels, stages and blocks per stage must be >= 1")
        return cls(
            in_channels,
            image_size,
            channels,
            levels,
            stages,
            blocks,
            tuple(BlockArch.complete(levels) for _ in range(stages * blocks)),
            tuple(REDUCTION_BRANCHES for _ in range(stages - 1)),
        )

    def num_edges(self) -> int:
        return sum(len(b.edges()) for b in self.blocks) + sum(len(r) for r in self.reductions)

    def num_ops(self) -> int:
        return sum(len(b.ops) for b in self.blocks)

    def to_dict(self) -> dict:
        return {
            "kind": "dso",
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "channels": self.channels,
            "levels": self.levels,
            "stages": self.stages,
            "blocks_per_stage": self.blocks_per_stage,
            "blocks": [
                {"ops": {str(k): list(v) for k, v in sorted(b.ops.items())}, "outputs": list(b.outputs)}
                for b in self.blocks
            ],
            "reductions": [list(r) for r in self.reductions],
        }

    @classmethod
    def from_dict(cls, d: dict) -> DSOArch:
        if d.get("kind") != "dso":
            raise ValueError(f"not a DSO-NAS architecture (kind={d.get('kind')!r})")
        blocks = tuple(
            BlockArch({int(k): tuple(v) for k, v in b["ops"].items()}, tuple(b["outputs"])) for b in d["blocks"]
        )
        return cls(
            d["in_channels"],
            d["image_size"],
            d["channels"],
            d["levels"],
            d["stages"],
            d["blocks_per_stage"],
            blocks,
            tuple(tuple(r) for r in d["reductions"]),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


class LambdaScaled(nn.Module):
    """Holds one lambda per edge (``lam``) and its APG momentum (``lam_v``) when searchable; 1 otherwise."""

    edge_keys: list

    def _init_lambda(self, keys: list, searchable: bool) -> None:
        self.edge_keys = keys
        self.searchable = searchable
        if searchable:
            self.lam = nn.Parameter(torch.ones(len(keys)))
            self.register_buffer("lam_v", torch.zeros(len(keys)))
        else:
            self.lam = None

    def scaled(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return x * self.lam[i] if self.lam is not None else x


class DSOBlock(LambdaScaled):
    def __init__(self, channels: int, arch: BlockArch, searchable: bool) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({str(i): make_op(DSO_OPS[i % len(DSO_OPS)], channels) for i in sorted(arch.ops)})
        edges = arch.edges()
        self._init_lambda(edges, searchable)
        index = {e: i for i, e in enumerate(edges)}
        self.inputs = {d: [(index[(d, s)], s) for s in srcs] for d, srcs in arch.ops.items()}
        self.outputs = [(index[(OUTPUT, s)], s) for s in arch.outputs]
        self.order = sorted(arch.ops)
        self.out_proj = ConvBN(channels, channels, 1) if arch.outputs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = {INPUT: x}
        for d in self.order:
            h[d] = self.ops[str(d)](sum(self.scaled(i, h[s]) for i, s in self.inputs[d]))
        if self.out_proj is None:
            return x
        return x + self.out_proj(sum(self.scaled(i, h[s]) for i, s in self.outputs))


class ReductionBlock(LambdaScaled):
    """lambda-scaled sum of a 1x1 and a 3x3 stride-2 conv (either may be pruned, not both), then ReLU."""

    def __init__(self, cin: int, cout: int, branches: tuple[str, ...], searchable: bool) -> None:
        super().__init__()
        if not branches:
            raise ValueError("a reduction block needs at least one branch")
        kernels = {"conv1": 1, "conv3": 3}
        self.branches = nn.ModuleDict({b: ConvBN(cin, cout, kernels[b], 2) for b in branches})
        self._init_lambda(list(branches), searchable)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(sum(self.scaled(i, self.branches[b](x)) for i, b in enumerate(self.edge_keys)))


class DSONet(nn.Module):
    """stem -> stages of DSO blocks separated by reduction blocks -> pool + Linear."""

    def __init__(self, arch: DSOArch, searchable: bool = True, num_classes: int = 10) -> None:
        super().__init__()
        self.arch = arch
        per = arch.blocks_per_stage
        self.stem, cells, c = stacked_stages(
            arch.in_channels,
            arch.image_size,
            arch.channels,
            arch.stages,
            lambda s, width: [DSOBlock(width, arch.blocks[s * per + b], searchable) for b in range(per)],
            lambda s, width: ReductionBlock(width, 2 * width, arch.reductions[s], searchable),
        )
        self.cells = nn.ModuleList(cells)
        self.head = ClassifierHead(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)

    def pruned_arch(self) -> DSOArch:
        """The architecture without the lambda = 0 edges and the operations they isolate (a reduction keeps >= 1)."""
        blocks, reductions = [], []
        for m in self.cells:
            if isinstance(m, DSOBlock):
                blocks.append(prune_block(self.arch.blocks[len(blocks)], kept_edges(m)))
            else:
                reductions.append(kept_branches(m))
        return replace(self.arch, blocks=tuple(blocks), reductions=tuple(reductions))

    def rebuilt(self, arch: DSOArch) -> DSONet:
        """A searchable network of ``arch`` with the surviving weights and each surviving edge's lambda and momentum."""
        return carry_over(self, DSONet(arch, searchable=True))


def lambda_modules(model: nn.Module) -> list[LambdaScaled]:
    """Every module that carries lambdas, in network order (blocks and reductions)."""
    return [m for m in model.modules() if isinstance(m, LambdaScaled) and m.lam is not None]


def prune_block(arch: BlockArch, keep: dict[tuple[int, int], bool]) -> BlockArch:
    """Drop the edges with ``keep[edge] == False``, then the operations left isolated, until nothing changes.

    An operation is isolated when no edge feeds it or nothing consumes it (no later operation, not the output).
    """
    ops = {d: [s for s in srcs if keep.get((d, s), True)] for d, srcs in arch.ops.items()}
    outputs = [s for s in arch.outputs if keep.get((OUTPUT, s), True)]
    while True:
        consumed = set(outputs) | {s for srcs in ops.values() for s in srcs}
        dead = {d for d, srcs in ops.items() if not srcs or d not in consumed}
        if not dead:
            break
        ops = {d: [s for s in srcs if s not in dead] for d, srcs in ops.items() if d not in dead}
        outputs = [s for s in outputs if s not in dead]
    return BlockArch({d: tuple(s) for d, s in ops.items()}, tuple(outputs))


def kept_edges(module: LambdaScaled) -> dict:
    """{edge key: lambda != 0} of a block or reduction (every edge kept when it carries no lambda)."""
    lam = module.lam.detach() if module.lam is not None else torch.ones(len(module.edge_keys))
    return {k: bool(v != 0) for k, v in zip(module.edge_keys, lam)}


def kept_branches(reduction: ReductionBlock) -> tuple[str, ...]:
    """The reduction's branches with a nonzero lambda; the strongest one if all are zero (a reduction must reduce)."""
    keep = kept_edges(reduction)
    kept = tuple(b for b in reduction.edge_keys if keep[b])
    return kept or (reduction.edge_keys[int(reduction.lam.detach().abs().argmax())],)


def carry_over(old: nn.Module, new: nn.Module) -> nn.Module:
    """Load into ``new`` (a rebuilt, smaller supernet) every weight of ``old`` whose name and shape survive, and each
    surviving edge's lambda and APG momentum; returns ``new``."""
    own = new.state_dict()
    weights = {k: v for k, v in old.state_dict().items() if not k.endswith(("lam", "lam_v"))}
    new.load_state_dict({k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}, strict=False)
    with torch.no_grad():
        for m_old, m_new in zip(lambda_modules(old), lambda_modules(new)):
            pos = {k: i for i, k in enumerate(m_old.edge_keys)}
            for j, key in enumerate(m_new.edge_keys):
                m_new.lam[j] = m_old.lam[pos[key]]
                m_new.lam_v[j] = m_old.lam_v[pos[key]]
    return new
