"""Search tasks: what a genome template looks like, how a genome is validated and which job evaluates it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from diffusiondrive_ros.model import load_config

from ..evaluate.candidate import evaluate_classify, evaluate_planner
from ..evaluate.classify import DATASETS, ClassifyBudget
from ..evaluate.planner import PlannerBudget
from ..space.genome import EncoderGenome, Genome, StageGene, check_deployable
from ..space.planner import genome_of_config, planner_config


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


def planner_template(base_config: str = "tiny") -> Genome:
    """The base config's own encoders at INT8 (macro layout for random genomes; also the hand-made seed)."""
    return genome_of_config(load_config(base_config), 8)


def planner_seed_genomes(base_config: str = "tiny") -> tuple[Genome, ...]:
    """The hand-made backbone of the base config at INT8 and at FP16: the references a search must beat."""
    int8 = planner_template(base_config)
    fp16 = replace(
        int8,
        image=int8.image.with_bits(16, (16,) * 4),
        lidar=int8.lidar.with_bits(16, (16,) * 4),
        linear_bits=16,
    )
    return int8, fp16


@dataclass
class PlannerTask:
    """Quality = validation error of the planner after a short training run on ``data`` (evaluate.planner)."""

    data: str
    budget: PlannerBudget = field(default_factory=PlannerBudget)
    template: Genome | None = None
    seeds: tuple[Genome, ...] | None = None

    name = "planner"
    quality_label = "1 / (1 + validation L2 in m), quantized"
    report_metrics = ("ade_4s", "min_ade", "mode_accuracy")

    def __post_init__(self) -> None:
        if not (Path(self.data) / "manifest.json").is_file():
            raise FileNotFoundError(f"{self.data} is not a `diffusiondrive data generate` folder (no manifest.json)")
        self.data = str(Path(self.data).resolve())
        if self.template is None:
            self.template = planner_template(self.budget.base_config)
        if self.seeds is None:
            self.seeds = planner_seed_genomes(self.budget.base_config)

    def validate(self, genome: Genome) -> None:
        planner_config(genome, load_config(self.budget.base_config))

    @property
    def evaluate_fn(self) -> Callable[[dict], dict]:
        return evaluate_planner

    def settings(self) -> dict:
        """What makes two runs comparable (stored in config.json so a resume with other settings is refused)."""
        return {"data": self.data, "budget": asdict(self.budget)}

    def job(self, genome: Genome, seed: int) -> dict:
        return {"genome": genome.to_json(), "data": self.data, "budget": asdict(self.budget), "seed": seed}
