"""Search tasks: what a genome template looks like, how a genome is validated and which job evaluates it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..evaluate.candidate import evaluate_classify
from ..evaluate.classify import DATASETS, ClassifyBudget
from ..space.genome import EncoderGenome, Genome, StageGene, check_deployable


def classify_template(dataset: str = "mnist") -> Genome:
    """A small MNIST-scale encoder layout: 28x28 -> stem /4 -> stages at strides (1, 2, 2, 1)."""
    strides = (1, 2, 2, 1) if dataset == "mnist" else (1, 1, 1, 1)
    stem_kernel = 3
    enc = EncoderGenome(
        in_channels=1,
        stem_width=8,
        stem_kernel=stem_kernel,
        stem_bits=8,
        base_widths=(8, 16, 32, 64),
        strides=strides,
        stages=tuple(StageGene() for _ in range(4)),
    )
    return Genome(image=enc, linear_bits=8)


@dataclass
class ClassifyTask:
    dataset: str = "mnist"
    budget: ClassifyBudget = field(default_factory=ClassifyBudget)
    template: Genome | None = None

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.template is None:
            self.template = classify_template(self.dataset)

    @property
    def name(self) -> str:
        return self.dataset

    def validate(self, genome: Genome) -> None:
        check_deployable(genome)

    @property
    def evaluate_fn(self) -> Callable[[dict], dict]:
        return evaluate_classify

    def job(self, genome: Genome, seed: int) -> dict:
        return {"genome": genome.to_json(), "dataset": self.dataset, "budget": asdict(self.budget), "seed": seed}
