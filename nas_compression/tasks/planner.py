"""The planner task: a genome's encoders inside the planner, trained briefly on simulator data, then judged.

A candidate replaces the base config's camera and LiDAR encoders (``space.planner.planner_config``), inherits its
parent's tensors where the search says so, trains a fixed number of seeded steps on an in-memory subset of the train
split of a ``diffusiondrive data generate`` folder (the project's ``train.step.train_step`` and warm-up/cosine
schedule), is BN-folded, quantized per the genome and calibrated on training samples, and is scored on the val split
with the trainer's own validation (``train.trainer.validate``: ADE/FDE of the best-scored mode, minADE, mode
accuracy).

Quality for the search (higher is better, in (0, 1], so the JASQ objective ACC·(SIZE/T)^w keeps its meaning):
``1 / (1 + error)`` with ``error`` the planner's L2 to the expert (``ade_4s``, the best-scored trajectory's mean
displacement over the 4 s plan) or, if asked, ``min_ade`` over the modes.

Latency is *measured*, not predicted: the whole candidate planner is exported to its deployed Q/DQ ONNX graph and
timed end to end in ONNX Runtime CPU (1 thread, median), because the fusion transformers' widths follow the image
stages, so a per-block table would miss most of the cost.

The supernets (DSO-NAS, EGS) are cell encoders inside the whole planner (``space.cells.planner``), trained through the
planner loss. Adapted to the planner, on purpose: their *weights* train with this task's optimiser (AdamW, warm-up +
cosine over the whole search, gradient clipping at 1, moments carried across DSO-NAS rebuilds) instead of the papers'
Nesterov SGD - the planner's attention and diffusion head do not train in a few hundred SGD steps, and a loss that
has not moved gives lambda and alpha no signal.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from diffusiondrive_ros.contract import INPUT_NAMES
from diffusiondrive_ros.data.dataset import DrivingDataset, collate
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.config import ModelConfig
from diffusiondrive_ros.model.diffusiondrive import DiffusionDriveModel
from diffusiondrive_ros.runtime.export import export_onnx
from diffusiondrive_ros.train.distributed import DistContext
from diffusiondrive_ros.train.schedule import lr_at, warmup_cosine
from diffusiondrive_ros.train.step import planner_loss, train_step, train_steps
from diffusiondrive_ros.train.trainer import TARGET_KEYS, validate

from ..measure.latency import TimingConfig, time_onnx
from ..quant.export import finish_qdq, predicted_weight_bytes
from ..quant.fake import assign_precisions, calibrate, fold_batchnorm, set_quant_enabled
from ..quant.policy import planner_rules
from ..space.cells.nearest_genome import nearest_planner_genome
from ..space.cells.planner import (
    DSOCellEncoder,
    EGSCellEncoder,
    cell_encoders,
    complete_dso_arch,
    egs_space,
    encoder_templates,
    planner_with_encoders,
)
from ..space.genome import Genome, genome_from_json
from ..space.planner import genome_of_config, planner_config
from .base import CellArch, Inheritance, Job, Supernet, WeightPhase

QUALITY_METRICS = ("ade_4s", "min_ade")
TENSOR_KEYS = ("camera", "lidar", "status", *TARGET_KEYS)


@dataclass(frozen=True)
class PlannerBudget:
    """What one candidate evaluation costs; the same for every candidate of a search (it is part of its config)."""

    base_config: str = "tiny"
    train_steps: int = 200
    batch_size: int = 8
    lr: float = 6e-4
    warmup_steps: int = 10
    train_samples: int = 1000  # evenly spaced over the train split (0: all)
    val_samples: int = 200  # evenly spaced over the val split (0: all)
    calib_batches: int = 4
    quality_metric: str = "ade_4s"
    latency_repeats: int = 50

    def __post_init__(self) -> None:
        checks = {
            "train_steps >= 1": self.train_steps >= 1,
            "batch_size >= 1": self.batch_size >= 1,
            "lr > 0": self.lr > 0,
            "0 <= warmup_steps": self.warmup_steps >= 0,
            "train_samples >= 0": self.train_samples >= 0,
            "val_samples >= 0": self.val_samples >= 0,
            "calib_batches >= 1": self.calib_batches >= 1,
            f"quality_metric in {QUALITY_METRICS}": self.quality_metric in QUALITY_METRICS,
            "latency_repeats >= 1": self.latency_repeats >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid planner proxy budget: need {', '.join(bad)}")


def quality_from_error(error_m: float) -> float:
    """Search quality of a displacement error in metres: 1 / (1 + error), 1 for a perfect planner."""
    if not np.isfinite(error_m) or error_m < 0:
        raise ValueError(f"displacement error must be finite and >= 0, got {error_m}")
    return 1.0 / (1.0 + error_m)


def evenly_spaced(n_total: int, n_wanted: int) -> np.ndarray:
    """``n_wanted`` distinct indices spread over ``range(n_total)`` (all of them when 0 or too many are asked)."""
    if n_wanted <= 0 or n_wanted >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_wanted).round().astype(int))


@lru_cache(maxsize=2)
def load_split(data_dir: str, split: str, n_samples: int, config_name: str) -> dict[str, torch.Tensor]:
    """The split's subset as stacked tensors, loaded once per process (every candidate of a worker reuses it)."""
    dataset = DrivingDataset(data_dir, split=split, config=load_config(config_name))
    if len(dataset) == 0:
        raise ValueError(f"{data_dir} has no {split} samples (too few scenes for the scene-level split?)")
    batch = collate([dataset[int(i)] for i in evenly_spaced(len(dataset), n_samples)])
    return {k: batch[k] for k in TENSOR_KEYS}


def batches(data: dict[str, torch.Tensor], batch_size: int, order: torch.Tensor | None = None):  # noqa: ANN201
    """Yield dict batches in ``order`` (default: as stored)."""
    n = len(data["camera"])
    order = torch.arange(n) if order is None else order
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        yield {k: v[idx] for k, v in data.items()}


def train_planner(
    model: DiffusionDriveModel, data: dict[str, torch.Tensor], budget: PlannerBudget, seed: int
) -> list[float]:
    """``budget.train_steps`` AdamW steps (warm-up + cosine) over reshuffled epochs of ``data``; returns the losses."""
    gen = torch.Generator().manual_seed(seed)  # the epoch orders and the diffusion noise
    opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=1e-4)
    sched = warmup_cosine(opt, min(budget.warmup_steps, budget.train_steps - 1), budget.train_steps)
    n = len(data["camera"])
    losses = train_steps(
        model, lambda: batches(data, budget.batch_size, torch.randperm(n, generator=gen)), budget.train_steps, opt,
        gen, sched,
    )
    model.eval()
    return losses


def validation_metrics(
    model: DiffusionDriveModel, data: dict[str, torch.Tensor], batch_size: int, seed: int = 0
) -> dict[str, float]:
    """The trainer's validation (seeded start noise) without the slow diversity raster."""
    return validate(model, list(batches(data, batch_size)), torch.device("cpu"), seed, diversity=False)


def quantize_planner(
    model: DiffusionDriveModel, genome: Genome, calib: dict[str, torch.Tensor], n_batches: int, batch_size: int
) -> DiffusionDriveModel:
    """Fold BN, apply the genome's precisions (encoders, fusion Linears) and calibrate on real samples (in place)."""
    model.eval()
    fold_batchnorm(model)
    assign_precisions(model, planner_rules(genome))
    k = model.config.trajectory_head.num_anchors
    gen = torch.Generator().manual_seed(1234)
    inputs = []
    for i, b in enumerate(batches(calib, batch_size)):
        if i >= n_batches:
            break
        noise = torch.randn(len(b["camera"]), k, model.trajectory_head.plan_anchor.shape[1], 2, generator=gen)
        inputs.append((b["camera"], b["lidar"], b["status"], noise))
    calibrate(model, inputs, forward=lambda x: model(*x))
    return model


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence the exporter's per-node optimiser messages and ONNX Runtime's session warnings (one per candidate)."""
    import onnxruntime as ort

    logger = logging.getLogger("onnxscript")
    level = logger.level
    logger.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        logger.setLevel(level)
        ort.set_default_logger_severity(2)


def measured_planner_latency(
    model: DiffusionDriveModel, cfg: ModelConfig, timing: TimingConfig, keep: str | Path | None = None
) -> float:
    """End-to-end latency (ms) of the quantized planner's deployed Q/DQ ONNX graph in ONNX Runtime (batch 1).

    ``keep``: also copy the Q/DQ graph there (for re-timing it later beside other candidates).
    """
    with tempfile.TemporaryDirectory() as tmp, quiet_export():
        float_path, qdq_path = Path(tmp) / "float.onnx", Path(tmp) / "planner.onnx"
        set_quant_enabled(model, False)
        try:
            export_onnx(model, cfg, float_path)
        finally:
            set_quant_enabled(model, True)
        finish_qdq(model, onnx.load(str(float_path)), qdq_path)
        if keep is not None:
            Path(keep).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(qdq_path, keep)
        return time_onnx(qdq_path, timing_feeds(model), timing)


def timing_feeds(model: DiffusionDriveModel) -> dict[str, np.ndarray]:
    """Fixed batch-1 inputs for timing a planner graph."""
    return {n: t.numpy() for n, t in zip(INPUT_NAMES, model.example_inputs(1, seed=0))}


def train_and_quantize_planner(
    genome: Genome,
    data_dir: str,
    budget: PlannerBudget,
    inheritance: Inheritance | None = None,
    seed: int = 0,
) -> tuple[DiffusionDriveModel, ModelConfig, dict[str, torch.Tensor], dict]:
    """Build (inheriting) -> train -> float validation -> quantize -> quantized validation.

    Returns (fake-quant model, its config, the float state for children, info with both validations and losses).
    """
    cfg = planner_config(genome, load_config(budget.base_config))
    train = load_split(str(data_dir), "train", budget.train_samples, budget.base_config)
    val = load_split(str(data_dir), "val", budget.val_samples, budget.base_config)
    model = build_model(cfg, seed=seed)
    inherited = inheritance.inherit(model) if inheritance else 0
    torch.manual_seed(seed)  # dropout
    losses = train_planner(model, train, budget, seed)
    float_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    float_metrics = validation_metrics(model, val, budget.batch_size)
    quantize_planner(model, genome, train, budget.calib_batches, budget.batch_size)
    quant_metrics = validation_metrics(model, val, budget.batch_size)
    info = {
        "float": float_metrics,
        "quant": quant_metrics,
        "inherited_tensors": inherited,
        "first_loss": float(np.mean(losses[: max(1, len(losses) // 10)])),
        "last_loss": float(np.mean(losses[-max(1, len(losses) // 10) :])),
    }
    return model, cfg, float_state, info


def evaluate_planner(job: Job, inheritance: Inheritance | None = None) -> dict:
    """job: genome (JSON), data (folder), budget (PlannerBudget dict), seed, onnx_out (keep the Q/DQ graph there).

    ``accuracy`` is the search quality 1 / (1 + error) of the quantized planner; the displacement errors (metres)
    and mode accuracy are reported beside it, float and quantized.
    """
    t0 = time.perf_counter()
    genome = genome_from_json(job["genome"])
    budget = PlannerBudget(**job.get("budget", {}))
    model, cfg, float_state, info = train_and_quantize_planner(
        genome, job["data"], budget, inheritance, seed=int(job.get("seed", 0))
    )
    if inheritance:
        inheritance.keep(float_state)
    quant, flt = info["quant"], info["float"]
    latency = measured_planner_latency(model, cfg, TimingConfig(repeats=budget.latency_repeats), job.get("onnx_out"))
    return {
        "accuracy": quality_from_error(quant[budget.quality_metric]),
        "float_accuracy": quality_from_error(flt[budget.quality_metric]),
        "ade_4s": quant["ade_4s"],
        "fde_4s": quant["fde_4s"],
        "min_ade": quant["min_ade"],
        "mode_accuracy": quant["mode_accuracy"],
        "float_ade_4s": flt["ade_4s"],
        "float_min_ade": flt["min_ade"],
        "float_mode_accuracy": flt["mode_accuracy"],
        "first_loss": info["first_loss"],
        "last_loss": info["last_loss"],
        "size_bytes": predicted_weight_bytes(model),
        "latency_ms": latency,
        "params": sum(p.numel() for p in model.parameters()),
        "inherited_tensors": info["inherited_tensors"],
        "eval_seconds": time.perf_counter() - t0,
    }


# -- the task ------------------------------------------------------------------------------------------------------
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
    """Quality = validation error of the planner after a short training run on ``data``; implements ``Task`` and
    ``SupernetTask``."""

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

    # genome searches
    def validate(self, genome: Genome) -> None:
        planner_config(genome, load_config(self.budget.base_config))

    @property
    def evaluate_fn(self) -> Callable[[Job, Inheritance | None], dict]:
        return evaluate_planner

    def settings(self) -> dict:
        """What makes two runs comparable (stored in config.json so a resume with other settings is refused)."""
        return {"data": self.data, "budget": asdict(self.budget)}

    def job(self, genome: Genome, seed: int) -> Job:
        return {"genome": genome.to_json(), "data": self.data, "budget": asdict(self.budget), "seed": seed}

    def small_proxy(self) -> PlannerTask:
        """A quarter of the training samples and half the steps per evaluation; no seed genomes."""
        b = self.budget
        n_train = b.train_samples or len(DrivingDataset(self.data, split="train", config=load_config(b.base_config)))
        small = replace(b, train_samples=max(b.batch_size, n_train // 4), train_steps=max(1, b.train_steps // 2))
        return PlannerTask(self.data, small, template=self.template, seeds=())

    # differentiable searches
    def supernet(
        self, kind: str, seed: int, ctx: DistContext, *, levels: int = 2, nodes: int = 3, m: int = 2
    ) -> Supernet:
        """Cell encoders in place of the base config's, inside the whole (seeded) planner; single process."""
        base = load_config(self.budget.base_config)
        train = load_split(self.data, "train", self.budget.train_samples, self.budget.base_config)
        templates = encoder_templates(base)
        torch.manual_seed(seed)  # the cell encoders' initial weights (and EGS alphas)
        if kind == "dso":
            encoders = {n: DSOCellEncoder(t, complete_dso_arch(t, size, levels)) for n, (t, size) in templates.items()}
        else:
            encoders = {
                n: EGSCellEncoder(t, egs_space(t, size, nodes, m), seed=seed + k)
                for k, (n, (t, size)) in enumerate(templates.items())
            }
        model = planner_with_encoders(base, encoders, seed)
        return _PlannerSupernet(kind, model, train, self.budget, seed)

    def nearest_genome(self, archs: dict[str, CellArch]) -> Genome:
        return nearest_planner_genome(archs, planner_template(self.budget.base_config))

    def train_cells(
        self, kind: str, archs: dict[str, CellArch], steps: int, lr: float, seed: int, ctx: DistContext
    ) -> tuple[nn.Module, float]:
        raise NotImplementedError(
            "the planner retrains the nearest genome of the derived cells (evaluate_planner), not the cells"
        )


class _PlannerSupernet(Supernet):
    """The planner with cell encoders (parts "image", "lidar"); weights train with the task's AdamW schedule."""

    def __init__(
        self, kind: str, model: DiffusionDriveModel, train: dict[str, torch.Tensor], budget: PlannerBudget, seed: int
    ) -> None:
        super().__init__(kind, model, len(train["camera"]), budget.batch_size)
        self.train, self.budget = train, budget
        self.gen = torch.Generator().manual_seed(seed)  # diffusion noise of every loss, weights' and architecture's
        self.total = 1

    def _batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.train.items()}

    def parts(self) -> dict[str, nn.Module]:
        return cell_encoders(self.model)

    def replace_parts(self, parts: dict[str, nn.Module]) -> None:
        for name, encoder in parts.items():
            setattr(self.model.backbone, f"{name}_encoder", encoder)
        # a new AdamW over the surviving weights, keeping the moments of those whose name and shape survive
        old, old_named = self.opt, self.named
        self._new_optimizer(old.param_groups[0]["lr"])
        by_name = {n: old.state[p] for n, p in old_named if p in old.state}
        for n, p in self.named:
            state = by_name.get(n)
            if state and state["exp_avg"].shape == p.shape:
                self.opt.state[p] = state

    def _new_optimizer(self, lr: float) -> None:
        arch = {id(p) for p in self.arch_parameters()}
        self.named = [(n, p) for n, p in self.model.named_parameters() if id(p) not in arch]
        self.opt = torch.optim.AdamW([p for _, p in self.named], lr=lr, weight_decay=1e-4)

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        self.model.train()
        return planner_loss(self.model, self._batch(idx), self.gen)[0]

    def weight_loss(self, idx: torch.Tensor) -> torch.Tensor:
        return self.loss(idx)  # one process: no DDP wrapper

    def start_weights(self, phases: Sequence[WeightPhase]) -> None:
        self.total = sum(p.steps for p in phases)  # one warm-up + cosine schedule over every phase
        self._new_optimizer(self.budget.lr)

    def next_phase(self) -> None:
        pass  # the planner's AdamW runs on through the phases

    def weight_step(self, idx: torch.Tensor, step: int) -> float:
        lr = lr_at(step, self.budget.lr, min(self.budget.warmup_steps, self.total - 1), self.total)
        for group in self.opt.param_groups:
            group["lr"] = lr
        return float(train_step(self.model, self._batch(idx), self.opt, self.gen)["loss"])

    def example_forward(self) -> None:
        self.model(*self.model.example_inputs(1, seed=0))

    def structure(self) -> dict:
        encs = self.parts()
        return {
            "edges": {n: e.arch.num_edges() for n, e in encs.items()},
            "ops": {n: e.arch.num_ops() for n, e in encs.items()},
        }
