"""What the differentiable searches (DSO-NAS, EGS) return, on any task: the derived cells, their nearest genome, the
search history and cost, and - where the task retrains derived cells - the retrained network."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..space.cells.dso import DSOArch
from ..space.genome import Genome
from ..tasks.base import CellArch


@dataclass
class SupernetResult:
    method: str  # "dso" | "egs"
    archs: dict[str, CellArch]  # the derived cell architecture of every searched part
    genome: Genome  # the nearest stage genome (what the genome tasks evaluate and the deploy path takes)
    history: list[dict] = field(default_factory=list)
    train_steps: int = 0  # training batches spent searching (weight and architecture batches)
    search_seconds: float = 0.0
    model: nn.Module | None = None  # the derived cells retrained from scratch (when the search retrained them)
    accuracy: float | None = None  # that network's validation quality
    retrain_seconds: float = 0.0

    @property
    def arch(self) -> CellArch:
        """The derived architecture of a search with one searched part (the classification network)."""
        if len(self.archs) != 1:
            raise ValueError(f"{len(self.archs)} searched parts ({sorted(self.archs)}): use .archs")
        return next(iter(self.archs.values()))

    def summary(self) -> str:
        """One line: per part, DSO-NAS's surviving operations and edges, or EGS's derived cell."""
        parts = {name: _arch_summary(a) for name, a in self.archs.items()}
        if len(parts) == 1:
            return next(iter(parts.values()))
        return "; ".join(f"{name}: {text}" for name, text in parts.items())


def _arch_summary(arch: CellArch) -> str:
    if isinstance(arch, DSOArch):
        return f"{arch.num_ops()} ops / {arch.num_edges()} edges"
    return " ".join("+".join(f"{op}@{p}" for p, op in node) for node in arch.cell)
