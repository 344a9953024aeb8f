"""The task protocol: what the searches need of a proxy task, so that a new task is one module.

Genome searches (JASQ, EAT-NAS) see a :class:`Task`: a genome template (plus hand-made seed genomes), the task's
deployability check, and a picklable evaluation of a JSON-like job (train briefly, quantize, measure quality, deployed
size and latency). Differentiable searches (DSO-NAS, EGS) see a :class:`SupernetTask`: it builds a :class:`Supernet` -
the task's network around the searched cells, with its data, its loss and its weight optimiser - and maps derived
cells to the nearest genome. Weight inheritance is the strategies' business; an evaluation only calls the
:class:`Inheritance` it is handed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from diffusiondrive_ros.train.distributed import DistContext

from ..space.cells.dso import DSOArch, lambda_modules
from ..space.cells.egs import EGSArch
from ..space.genome import Genome

Job = dict[str, Any]
CellArch = DSOArch | EGSArch
SUPERNET_KINDS = ("dso", "egs")


class Inheritance(Protocol):
    """Weight inheritance around one evaluation (implemented in ``strategies.inheritance``)."""

    def inherit(self, model: nn.Module) -> int:
        """Copy the parent's tensors into the freshly built ``model``; returns how many were copied."""
        ...

    def keep(self, float_state: dict[str, torch.Tensor]) -> None:
        """Store the trained float weights, for the children to inherit."""
        ...


EvaluateFn = Callable[[Job, Inheritance | None], dict]


class Task(Protocol):
    """A proxy task for the genome searches; ``evaluate_fn`` must be a module-level function (evaluators pickle it).

    The metrics an evaluation returns hold at least ``accuracy`` (the quality to maximise, in (0, 1]),
    ``size_bytes`` (predicted deployed bytes), ``latency_ms``, ``eval_seconds`` and ``inherited_tensors``.
    """

    name: str
    template: Genome  # the macro layout random genomes are drawn in
    seeds: tuple[Genome, ...]  # hand-made genomes put into the first generation (may be empty)
    quality_label: str
    report_metrics: tuple[str, ...]  # further metrics the front tables show

    def validate(self, genome: Genome) -> None:
        """Raise ``DeployabilityError`` when the genome cannot be built or deployed for this task."""
        ...

    def job(self, genome: Genome, seed: int) -> Job:
        """The JSON-like evaluation job of ``genome``."""
        ...

    def settings(self) -> dict:
        """What makes two searches comparable beyond the genome template (stored with a search; may be empty)."""
        ...

    def small_proxy(self) -> Task:
        """A cheaper version of the task (EAT-NAS searches it first)."""
        ...

    @property
    def evaluate_fn(self) -> EvaluateFn: ...


@dataclass(frozen=True)
class WeightPhase:
    """One phase of supernet weight training as the papers run it: Nesterov SGD at ``lr``, cosine-annealed over
    ``steps`` or constant. A task may train its weights otherwise (the planner does; see ``tasks.planner``)."""

    steps: int
    lr: float
    weight_decay: float
    cosine: bool = True


class Supernet(ABC):
    """A task's trainable network around searched cells, its training data, loss and weight optimiser.

    The strategies pick the batches (indices into the ``n_train`` training samples) and update the architecture
    parameters; the task turns a batch into a loss and steps the weights. ``parts()`` are the searched cell modules
    by name: DSO-NAS networks (``arch``, ``pruned_arch()``, ``rebuilt(arch)``) or EGS search states (alphas, ``tau``,
    ``reseed``).
    """

    def __init__(self, kind: str, model: nn.Module, n_train: int, batch_size: int) -> None:
        if kind not in SUPERNET_KINDS:
            raise ValueError(f"unknown supernet kind {kind!r}; choose one of {SUPERNET_KINDS}")
        self.kind, self.model, self.n_train, self.batch_size = kind, model, n_train, batch_size

    def arch_parameters(self) -> list[nn.Parameter]:
        """DSO-NAS: every lambda; EGS: every part's alphas."""
        if self.kind == "dso":
            return [m.lam for m in lambda_modules(self.model)]
        return [p for part in self.parts().values() for p in part.arch_parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the architecture parameters, in the network's order."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.model.parameters() if id(p) not in arch]

    @abstractmethod
    def parts(self) -> dict[str, nn.Module]:
        """The searched cell modules by name."""

    @abstractmethod
    def replace_parts(self, parts: dict[str, nn.Module]) -> None:
        """Swap in rebuilt cell modules (DSO-NAS pruning); the weight optimiser follows them."""

    @abstractmethod
    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        """Mean training loss of the unwrapped network on this process's share of the global batch ``idx``."""

    @abstractmethod
    def weight_loss(self, idx: torch.Tensor) -> torch.Tensor:
        """The same loss through the (DDP-wrapped) network, whose backward averages the gradients over the ranks."""

    @abstractmethod
    def start_weights(self, phases: Sequence[WeightPhase]) -> None:
        """Set up the weight optimiser for the strategy's phases."""

    @abstractmethod
    def next_phase(self) -> None:
        """Move to the next of the phases given to :meth:`start_weights`."""

    @abstractmethod
    def weight_step(self, idx: torch.Tensor, step: int) -> float:
        """One weight update on the global batch ``idx`` (``step``: the weight step's index over all phases); the
        same backward pass leaves the architecture parameters their gradients. Returns the loss."""

    @abstractmethod
    def example_forward(self) -> None:
        """One single-sample forward (the budget-aware DSO-NAS measures per-block FLOPs or latency on it)."""

    @abstractmethod
    def structure(self) -> dict:
        """The size of the supernet as a DSO-NAS history records it (edges, operations, ...)."""


class SupernetTask(Protocol):
    """A proxy task for the differentiable searches."""

    name: str

    def supernet(
        self, kind: str, seed: int, ctx: DistContext, *, levels: int = 2, nodes: int = 3, m: int = 2
    ) -> Supernet:
        """The complete supernet of ``kind`` (dso: ``levels`` per block; egs: ``nodes`` per cell, ``m`` inputs per
        node), initialised from ``seed``."""
        ...

    def nearest_genome(self, archs: dict[str, CellArch]) -> Genome:
        """The stage genome nearest to the derived cells (one architecture per part)."""
        ...

    def train_cells(
        self, kind: str, archs: dict[str, CellArch], steps: int, lr: float, seed: int, ctx: DistContext
    ) -> tuple[nn.Module, float]:
        """Train the derived cell network from scratch (initial weights from the global RNG, batches from ``seed``);
        returns it with its validation quality."""
        ...


def halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random halves of the training indices (weights learn on one, the architecture on the other)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2 :]


def index_batches(indices: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless reshuffled global batches of ``indices`` (identical on every rank: same seed); full batches only,
    of at most as many samples as there are."""
    batch_size = max(1, min(batch_size, len(indices)))
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = indices[torch.randperm(len(indices), generator=gen)]
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield order[i : i + batch_size]
