"""The planner proxy task: a genome's encoders inside the planner, trained briefly on simulator data, then judged.

A candidate replaces the base config's camera and LiDAR encoders (``space.planner.planner_config``), inherits every
parent tensor whose name and shape match, trains a fixed number of seeded steps on an in-memory subset of the train
split of a ``diffusiondrive data generate`` folder (the project's ``train_step`` and warm-up/cosine schedule),
is BN-folded, quantized per the genome and calibrated on training samples, and is scored on the val split with the
trainer's own validation (``train.trainer.validate``: ADE/FDE of the best-scored mode, minADE, mode accuracy).

Quality for the search (higher is better, in (0, 1], so the JASQ objective ACC·(SIZE/T)^w keeps its meaning):
``1 / (1 + error)`` with ``error`` the planner's L2 to the expert (``ade_4s``, the best-scored trajectory's mean
displacement over the 4 s plan) or, if asked, ``min_ade`` over the modes.

Latency is *measured*, not predicted: the whole candidate planner is exported to its deployed Q/DQ ONNX graph and
timed end to end in ONNX Runtime CPU (1 thread, median), because the fusion transformers' widths follow the image
stages and the issue asks for measured latency against the hand-made ``tiny`` backbone.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import torch

from diffusiondrive_ros.contract import INPUT_NAMES
from diffusiondrive_ros.data.dataset import DrivingDataset, collate
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.config import ModelConfig
from diffusiondrive_ros.model.diffusiondrive import DiffusionDriveModel
from diffusiondrive_ros.model.training import train_step
from diffusiondrive_ros.runtime.export import export_onnx
from diffusiondrive_ros.train.schedule import warmup_cosine
from diffusiondrive_ros.train.trainer import TARGET_KEYS, validate

from ..quant.export import finish_qdq
from ..quant.fake import assign_precisions, calibrate, fold_batchnorm, set_quant_enabled
from ..quant.policy import planner_rules
from ..space.genome import Genome
from ..space.planner import planner_config
from .classify import inherit_weights
from .latency import TimingConfig, time_onnx

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


def planner_budget_from_args(args) -> PlannerBudget:  # noqa: ANN001 - argparse namespace of a planner command
    """The PlannerBudget of the ``--base-config/--train-steps/...`` options shared by ``search`` and ``compare``."""
    return PlannerBudget(
        base_config=args.base_config,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        train_samples=args.train_samples,
        val_samples=args.val_samples,
        quality_metric=args.quality,
        latency_repeats=args.latency_repeats,
    )


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
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=1e-4)
    sched = warmup_cosine(opt, min(budget.warmup_steps, budget.train_steps - 1), budget.train_steps)
    n = len(data["camera"])
    losses: list[float] = []
    while len(losses) < budget.train_steps:
        for batch in batches(data, budget.batch_size, torch.randperm(n, generator=gen)):
            losses.append(float(train_step(model, batch, opt, gen)["loss"]))
            sched.step()
            if len(losses) >= budget.train_steps:
                break
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
        return time_onnx(qdq_path, planner_feeds(model), timing)


def planner_feeds(model: DiffusionDriveModel) -> dict[str, np.ndarray]:
    """Fixed batch-1 inputs for timing a planner graph."""
    return {n: t.numpy() for n, t in zip(INPUT_NAMES, model.example_inputs(1, seed=0))}


def train_and_quantize_planner(
    genome: Genome,
    data_dir: str,
    budget: PlannerBudget,
    parent_state: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[DiffusionDriveModel, ModelConfig, dict[str, torch.Tensor], dict]:
    """Build (inheriting) -> train -> float validation -> quantize -> quantized validation.

    Returns (fake-quant model, its config, the float state for children, info with both validations and losses).
    """
    cfg = planner_config(genome, load_config(budget.base_config))
    train = load_split(str(data_dir), "train", budget.train_samples, budget.base_config)
    val = load_split(str(data_dir), "val", budget.val_samples, budget.base_config)
    model = build_model(cfg, seed=seed)
    inherited = inherit_weights(model, parent_state)
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
