"""EGS (ensemble Gumbel-Softmax) cells: every node may take any predecessor through any operation.

Node i of a cell (0-based) has i + 1 predecessors (the cell input and the earlier nodes) and so (i + 1) * N
candidate (predecessor, operation) pairs with architecture logits alpha (shared by all cells, as in DARTS). During the
search each node draws M hard straight-through Gumbel-Softmax samples and combines them by element-wise max: a binary
code with at most M ones, normalised, weighting the candidate outputs; the loss's one backward pass reaches the
weights and alpha alike. The derived cell keeps, per node, the M pairs most likely to be drawn (the top-M of
softmax(alpha): P(drawn in M samples) = 1 - (1 - p)^M grows with p). A cell's output is a 1x1 ConvBN of the concatenated
nodes plus the cell input; fixed stride-2 ConvBN reductions double the width between cells.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .ops import EGS_OPS, ClassifierHead, ConvBN, make_op, stacked_stages

Pair = tuple[int, str]  # (predecessor: 0 = cell input, k = node k - 1; operation name)


def candidate_pairs(node: int) -> list[Pair]:
    return [(p, op) for p in range(node + 1) for op in EGS_OPS]


@dataclass(frozen=True)
class EGSArch:
    in_channels: int
    image_size: int
    channels: int
    nodes: int
    cells: int
    m: int  # connections per node
    cell: tuple[tuple[Pair, ...], ...] | None = None  # the derived cell (None: the search space)

    def pairs(self, node: int) -> list[Pair]:
        return candidate_pairs(node) if self.cell is None else list(self.cell[node])

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("in_channels", "image_size", "channels", "nodes", "cells", "m")}
        d["cell"] = None if self.cell is None else [[list(p) for p in node] for node in self.cell]
        return {"kind": "egs", **d}

    @classmethod
    def from_dict(cls, d: dict) -> EGSArch:
        if d.get("kind") != "egs":
            raise ValueError(f"not an EGS architecture (kind={d.get('kind')!r})")
        cell = d.get("cell")
        cell = None if cell is None else tuple(tuple((int(p), str(op)) for p, op in node) for node in cell)
        return cls(d["in_channels"], d["image_size"], d["channels"], d["nodes"], d["cells"], d["m"], cell)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def ensemble_gumbel_weights(alpha: torch.Tensor, m: int, tau: float, gen: torch.Generator | None) -> torch.Tensor:
    """M hard straight-through Gumbel-Softmax samples of ``alpha``, combined by element-wise max, normalised.

    Forward: a binary code with between 1 and M ones divided by their count. Backward: the straight-through gradient
    of the soft samples (through the max, to the sample that set each entry).
    """
    u = torch.rand((m, alpha.numel()), generator=gen, dtype=alpha.dtype).to(alpha.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-10)))
    soft = F.softmax((alpha.unsqueeze(0) + gumbel) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), alpha.numel()).to(soft.dtype)
    samples = hard - soft.detach() + soft
    code = samples.max(dim=0).values
    return code / code.sum()


class Cell(nn.Module):
    def __init__(self, channels: int, arch: EGSArch) -> None:
        super().__init__()
        self.nodes = arch.nodes
        self.pairs = [arch.pairs(i) for i in range(arch.nodes)]
        self.ops = nn.ModuleDict(
            {f"n{i}_{p}_{op}": make_op(op, channels) for i in range(arch.nodes) for p, op in self.pairs[i]}
        )
        self.out_proj = ConvBN(channels * arch.nodes, channels, 1)

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor] | None = None) -> torch.Tensor:
        h = [x]
        for i in range(self.nodes):
            outs = [self.ops[f"n{i}_{p}_{op}"](h[p]) for p, op in self.pairs[i]]
            if weights is None:
                h.append(sum(outs))
            else:  # every pair is computed: unpicked pairs (weight 0) still pass a gradient to alpha
                h.append(sum(w * o for w, o in zip(weights[i], outs)))
        return x + self.out_proj(torch.cat(h[1:], dim=1))


class EGSSearchState:
    """The searchable part every EGS supernet (nn.Module) shares: per-node alphas, temperature, seeded Gumbel draws.

    Call :meth:`init_search` after ``nn.Module.__init__``; the module needs ``self.arch`` (an :class:`EGSArch`).
    """

    arch: EGSArch

    def init_search(self, arch: EGSArch, seed: int) -> None:
        self.searchable = arch.cell is None
        if self.searchable:
            self.alphas = nn.ParameterList(
                [nn.Parameter(1e-3 * torch.randn(len(candidate_pairs(i)))) for i in range(arch.nodes)]
            )
        self.tau = 5.0
        self._gen = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        """Fix the Gumbel noise of the next forward (every DDP rank passes the same seed: same architecture)."""
        self._gen.manual_seed(seed)

    def sample_weights(self) -> list[torch.Tensor]:
        """One ensemble Gumbel draw of every node's M input pairs."""
        return [ensemble_gumbel_weights(a, self.arch.m, self.tau, self._gen) for a in self.alphas]

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas) if self.searchable else []


class EGSNet(EGSSearchState, nn.Module):
    """stem -> cells separated by stride-2 ConvBN reductions -> pool + Linear. Searchable when ``arch.cell`` is None."""

    def __init__(self, arch: EGSArch, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        self.arch = arch
        self.stem, layers, c = stacked_stages(
            arch.in_channels,
            arch.image_size,
            arch.channels,
            arch.cells,
            lambda _, width: [Cell(width, arch)],
            lambda _, width: ConvBN(width, 2 * width, 3, 2, relu=True),
        )
        self.layers = nn.ModuleList(layers)
        self.head = ClassifierHead(c, num_classes)
        self.init_search(arch, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.sample_weights() if self.searchable else None
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, weights) if isinstance(layer, Cell) else layer(x)
        return self.head(x)


def derive(net: EGSSearchState) -> EGSArch:
    """The derived cell: per node the M candidate pairs most likely to be drawn (top-M of softmax(alpha))."""
    if not net.searchable:
        raise ValueError("derive() needs the searchable supernet")
    cell = []
    for i, a in enumerate(net.alphas):
        pairs = candidate_pairs(i)
        top = torch.argsort(a.detach(), descending=True)[: net.arch.m]
        cell.append(tuple(pairs[int(j)] for j in sorted(top.tolist())))
    return replace(net.arch, cell=tuple(cell))
