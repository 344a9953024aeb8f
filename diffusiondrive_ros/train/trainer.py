"""The DiffusionDrive training loop: AdamW + warm-up/cosine, checkpoints with exact resume, validation, DDP.

Run folder layout (``--out RUN_DIR``)::

    config.yaml                model config (trajectory_head.anchors -> anchors.npy): load_config(RUN_DIR/config.yaml)
    anchors.npy                the (k, 8, 2) anchors the model was built with (also inside every checkpoint)
    checkpoints/last.safetensors, best.safetensors    weights (model.checkpoint format)
    checkpoints/last_state.pt  optimizer, scheduler, scaler, epoch/step, RNG states, history: for --resume
    history.csv                one row per epoch (train loss, lr, validation metrics)
    tensorboard/               scalars (or scalars.csv when tensorboard is not installed)
    training_curves.png

Randomness is split so that resuming is exact: the sample order comes from (seed, epoch) via the sampler, the
diffusion timesteps/noise from a dedicated generator, dropout from the global torch RNG; the latter two are saved.
Under DDP every rank draws the diffusion inputs of the whole global batch and keeps its own rows, so a DDP step
sees the same noise as a single process on the same global batch.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from ..data.dataset import DrivingDataset, collate
from ..model import build_model, load_config
from ..model.anchors import load_anchors
from ..model.checkpoint import ANCHOR_KEY, check_state_dict, read_checkpoint, save_checkpoint
from ..model.config import ModelConfig, save_config
from ..model.diffusiondrive import DiffusionDriveModel
from . import distributed as ddp
from .anchors import ANCHORS_FILE, cluster_anchors, load_dataset_trajectories, save_anchors
from .curves import plot_training_curves
from .distributed import rank_slice  # noqa: F401 - part of this module's interface (test_train_ddp)
from .metrics import MetricAccumulator, batch_metrics
from .scalars import make_scalar_logger
from .schedule import MIN_LR, warmup_cosine
from .step import TrainingForward, train_step, training_loss  # noqa: F401 - training_loss: as rank_slice

log = logging.getLogger(__name__)

STATE_VERSION = 1
MODEL_INPUTS = ("camera", "lidar", "status")
TARGET_KEYS = ("trajectory", "agent_states", "agent_labels", "bev_semantic_map")


@dataclass(frozen=True)
class TrainOptions:
    """Everything that determines a training run (the ``diffusiondrive train`` arguments)."""

    data: str | tuple[str, ...]  # one dataset folder, or several trained on together (expert + on-policy rounds)
    out: str
    config: str = "tiny"
    epochs: int = 10
    batch_size: int = 16  # per process; the global batch is batch_size * world size
    lr: float = 6e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr: float = MIN_LR
    grad_clip: float = 1.0
    workers: int = 0
    # Shards kept decoded in memory per process. Shuffled batches touch many shards, so a small cache reloads a
    # shard for almost every sample; None keeps them all (about 90 KB per tiny sample, 0.8 MB per navsim sample).
    cache_shards: int | None = None
    anchors: str | None = None
    anchor_seed: int = 0
    resume: bool = False
    # Fine-tuning: start from this checkpoint's weights, config and anchors, with a fresh optimizer and schedule.
    init_from: str | None = None
    # With init_from: build --config with new anchors (--anchors or k-means of the data) and load the checkpoint's
    # weights into it (same shapes; a config that changes ranges or normalisation, not layers).
    retarget: bool = False
    seed: int = 0
    val_fraction: float = 0.1
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule still spans --epochs)
    device: str = "cpu"
    amp: bool = False
    progress: bool = True
    diversity: bool = True  # mode diversity in validation (rasterisation: the slowest metric)

    def __post_init__(self) -> None:
        checks = {
            "epochs >= 1": self.epochs >= 1,
            "batch_size >= 1": self.batch_size >= 1,
            "lr > 0": self.lr > 0,
            "weight_decay >= 0": self.weight_decay >= 0,
            "warmup_epochs >= 0": self.warmup_epochs >= 0,
            "workers >= 0": self.workers >= 0,
            "0 <= val_fraction < 1": 0 <= self.val_fraction < 1,
            "max_steps >= 1": self.max_steps is None or self.max_steps >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training options: need {', '.join(bad)}")
        object.__setattr__(self, "data", (self.data,) if isinstance(self.data, str) else tuple(self.data))
        if not self.data:
            raise ValueError("invalid training options: need at least one data folder")
        if self.init_from and self.resume:
            raise ValueError("init_from starts a new run: it cannot be combined with resume")
        if self.init_from and self.anchors and not self.retarget:
            raise ValueError("init_from keeps the checkpoint's anchors; new anchors need retarget")
        if self.retarget and not self.init_from:
            raise ValueError("retarget loads init_from's weights into --config: it needs init_from")


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    steps_done: int
    history: list[dict[str, float]]
    best_metric: float
    samples_per_s: float
    is_main: bool = True  # False on torchrun ranks other than 0


class ResumableSampler(Sampler[int]):
    """A DistributedSampler (seeded shuffle, set per epoch) that can skip the first samples of one epoch.

    The skip serves a resume from the middle of an epoch without loading the skipped samples.
    """

    def __init__(self, inner: DistributedSampler) -> None:
        self.inner = inner
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[self.skip :])

    def __len__(self) -> int:
        return len(self.inner) - self.skip


# -- pieces --------------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global state, for augmentation hooks that use it
    torch.manual_seed(seed)


def rng_state(noise_generator: torch.Generator) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "python": random.getstate(),
        "noise": noise_generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], noise_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    noise_generator.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_anchors(opts: TrainOptions, cfg: ModelConfig, run_dir: Path, ctx: ddp.DistContext) -> np.ndarray:
    """The run's anchors: the run folder's (resume), --anchors, DATA/anchors.npy, or k-means of the training split."""
    k = cfg.trajectory_head.num_anchors
    if opts.resume:
        path: Path | None = run_dir / ANCHORS_FILE
    elif opts.anchors:
        path = Path(opts.anchors)
    else:  # a single data folder's own anchors file
        path = Path(opts.data[0]) / ANCHORS_FILE
        path = path if len(opts.data) == 1 and path.is_file() else None
    if path is not None:
        if ctx.is_main:
            log.info("anchors from %s", path)
        return load_anchors(path, k)
    trajectories = np.concatenate([load_dataset_trajectories(d, "train", opts.val_fraction) for d in opts.data])
    anchors, sizes = cluster_anchors(trajectories, k, seed=opts.anchor_seed)
    if ctx.is_main:
        log.info("k-means anchors of %d training trajectories; cluster sizes %s", len(trajectories), sizes.tolist())
    return anchors


def concat_datasets(folders: tuple[str, ...], split: str, val_fraction: float, cfg: ModelConfig,
                    cache_shards: int | None) -> Dataset:
    """One dataset over several data folders' splits (each folder split by scene on its own)."""
    parts = [DrivingDataset(f, split, val_fraction, config=cfg, cache_shards=cache_shards) for f in folders]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def validate(
    model: DiffusionDriveModel,
    loader: DataLoader,
    device: torch.device,
    seed: int,
    diversity: bool = True,
    progress: bool = False,
) -> dict[str, float]:
    """Mean validation metrics of the eval-mode planner (model(...) with seeded start noise, same every epoch)."""
    was_training = model.training
    model.eval()
    anchors = model.trajectory_head.plan_anchor.detach().cpu().numpy()
    k = model.config.trajectory_head.num_anchors
    generator = torch.Generator().manual_seed(seed)
    acc = MetricAccumulator()
    for batch in tqdm(loader, desc="validate", leave=False, disable=not progress):
        b = batch["camera"].shape[0]
        noise = torch.randn(b, k, anchors.shape[1], 2, generator=generator)
        batch = move_batch(batch, device)
        out = model(batch["camera"], batch["lidar"], batch["status"], noise.to(device))
        acc.add(batch_metrics(
            out["trajectory"].float().cpu().numpy(), out["modes"].float().cpu().numpy(),
            out["mode_scores"].float().cpu().numpy(), batch["trajectory"].cpu().numpy(), anchors, diversity,
        ))
    model.train(was_training)
    return acc.means()


def write_history_csv(history: list[dict[str, float]], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def run_config(cfg: ModelConfig) -> ModelConfig:
    """The config as written to RUN_DIR/config.yaml: anchors taken from the run folder's anchors file."""
    return cfg.replace(trajectory_head=dataclasses.replace(cfg.trajectory_head, anchors=ANCHORS_FILE))


# -- the loop ------------------------------------------------------------------------------------------------------
class Trainer:
    """One training run. ``run()`` trains to the end (or to --max-steps) and returns a TrainResult."""

    def __init__(self, opts: TrainOptions) -> None:
        self.opts = opts
        self.ctx = ddp.setup_distributed(opts.device)
        self.run_dir = Path(opts.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.state_path = self.ckpt_dir / "last_state.pt"
        if opts.resume and not self.state_path.is_file():
            raise FileNotFoundError(f"--resume: no training state {self.state_path} (start without --resume)")
        if not opts.resume and self.state_path.is_file():
            raise FileExistsError(f"{self.run_dir} already holds a run; pass --resume or choose another --out")
        if opts.amp and self.ctx.device.type == "cpu":
            log.warning("--amp on CPU uses bfloat16 autocast: slower than float32 on most CPUs")
        seed_everything(opts.seed)
        init_tensors = None
        if opts.resume:
            cfg = load_config(self.run_dir / "config.yaml")
        elif opts.init_from:
            init_tensors, cfg, _ = read_checkpoint(opts.init_from)
            if opts.retarget:  # --config decides; the checkpoint only lends its weights
                cfg = load_config(opts.config)
            log.info("fine-tuning from %s%s", opts.init_from, f" retargeted to {cfg.name}" if opts.retarget else "")
        else:
            cfg = load_config(opts.config)
        self.train_set = concat_datasets(opts.data, "train", opts.val_fraction, cfg, opts.cache_shards)
        self.val_set = (concat_datasets(opts.data, "val", opts.val_fraction, cfg, opts.cache_shards)
                        if opts.val_fraction else None)
        if len(self.train_set) == 0:
            raise ValueError(f"{list(opts.data)} hold no training samples (val_fraction {opts.val_fraction})")
        if init_tensors is not None and not opts.retarget:
            anchors = init_tensors[ANCHOR_KEY].numpy()
        else:
            anchors = resolve_anchors(opts, cfg, self.run_dir, self.ctx)
        self.cfg = cfg.replace(trajectory_head=dataclasses.replace(cfg.trajectory_head, anchors=None))
        self.model = build_model(self.cfg, anchors=anchors, seed=opts.seed)
        if init_tensors is not None:
            if opts.retarget:  # keep the run's own anchors
                init_tensors = {**init_tensors, ANCHOR_KEY: self.model.state_dict()[ANCHOR_KEY]}
            check_state_dict(self.model, init_tensors, str(opts.init_from))
            self.model.load_state_dict(init_tensors, strict=True)
        self.model.to(self.ctx.device)
        # Every parameter takes part in the loss (test_train_ddp checks it), so DDP runs no unused-parameter search.
        self.forward: nn.Module = self.ctx.wrap(TrainingForward(self.model))
        self.sampler = ResumableSampler(DistributedSampler(
            self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank, shuffle=True, seed=opts.seed
        ))
        self.train_loader = self._loader(self.train_set, self.sampler)
        self.val_loader = self._loader(self.val_set, None) if self.val_set is not None and len(self.val_set) else None
        self.steps_per_epoch = math.ceil(len(self.sampler.inner) / opts.batch_size)
        total = opts.epochs * self.steps_per_epoch
        warmup = min(int(round(opts.warmup_epochs * self.steps_per_epoch)), total - 1)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        self.scheduler = warmup_cosine(self.optimizer, warmup, total, opts.min_lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=opts.amp and self.ctx.device.type == "cuda")
        self.noise_generator = torch.Generator().manual_seed(opts.seed + 1)
        self.epoch, self.step, self.batch_in_epoch = 0, 0, 0
        self.epoch_loss_sum, self.epoch_samples = 0.0, 0
        self.best_metric = math.inf
        self.history: list[dict[str, float]] = []
        if opts.resume:
            self._load_state()
        elif self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_anchors(anchors, self.run_dir / ANCHORS_FILE)
            save_config(run_config(self.cfg), self.run_dir / "config.yaml")
            (self.run_dir / "train_options.json").write_text(json.dumps(dataclasses.asdict(opts), indent=2))
        ddp.barrier(self.ctx)
        self.scalars = make_scalar_logger(self.run_dir / "tensorboard", enabled=self.ctx.is_main)

    def _loader(self, dataset: Dataset | None, sampler: Sampler | None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.opts.batch_size, sampler=sampler, shuffle=False, num_workers=self.opts.workers,
            collate_fn=collate, pin_memory=self.ctx.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.opts.seed),  # keeps the global RNG for dropout only
            persistent_workers=self.opts.workers > 0,  # workers keep their shard cache across epochs
        )

    # -- state -------------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "options": dataclasses.asdict(self.opts),
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_samples": self.epoch_samples,
            "best_metric": self.best_metric,
            "history": self.history,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(self.noise_generator),
        }

    def _load_state(self) -> None:
        state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.state_path}: training-state version {state.get('version')} != {STATE_VERSION}")
        tensors, _, _ = read_checkpoint(self.ckpt_dir / "last.safetensors")
        check_state_dict(self.model, tensors, str(self.ckpt_dir / "last.safetensors"))
        self.model.load_state_dict(tensors)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"], self.noise_generator)
        for key in ("epoch", "step", "batch_in_epoch", "epoch_loss_sum", "epoch_samples", "best_metric", "history"):
            setattr(self, key, state[key])
        if self.ctx.is_main:
            log.info("resumed %s at epoch %d, step %d", self.run_dir, self.epoch, self.step)

    def _save(self, best: bool) -> None:
        if not self.ctx.is_main:
            return
        extra = {"epoch": self.epoch, "step": self.step}
        save_checkpoint(self.model, self.ckpt_dir / "last.safetensors", extra=extra)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        torch.save(self._state(), tmp)
        tmp.replace(self.state_path)
        if best:
            shutil.copyfile(self.ckpt_dir / "last.safetensors", self.ckpt_dir / "best.safetensors")

    # -- steps -------------------------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        logs = train_step(self.model, move_batch(batch, self.ctx.device), self.optimizer, self.noise_generator,
                          forward=self.forward, ctx=self.ctx, scaler=self.scaler, grad_clip=self.opts.grad_clip,
                          amp=self.opts.amp, step=self.step)
        self.scheduler.step()
        return logs

    def _finish_epoch(self) -> None:
        row: dict[str, float] = {
            "epoch": self.epoch + 1, "step": self.step,
            "train_loss": self.epoch_loss_sum / max(self.epoch_samples, 1),
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if self.ctx.is_main and self.val_loader is not None:
            metrics = validate(self.model, self.val_loader, self.ctx.device, self.opts.seed, self.opts.diversity,
                               self.opts.progress)
            row.update({f"val_{k}": v for k, v in metrics.items()})
        score = row.get("val_min_ade", row["train_loss"])
        improved = score < self.best_metric
        self.best_metric = min(self.best_metric, score)
        self.history.append(row)
        for key, value in row.items():
            if key not in ("epoch", "step"):
                self.scalars.add_scalar(f"epoch/{key}", value, self.epoch + 1)
        self.epoch += 1
        self.batch_in_epoch, self.epoch_loss_sum, self.epoch_samples = 0, 0.0, 0
        self._save(best=improved)
        if self.ctx.is_main:
            write_history_csv(self.history, self.run_dir / "history.csv")
            log.info("epoch %d: %s", row["epoch"], ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        ddp.barrier(self.ctx)

    def _stop(self) -> bool:
        return self.opts.max_steps is not None and self.step >= self.opts.max_steps

    def run(self) -> TrainResult:
        opts, ctx = self.opts, self.ctx
        samples, start = 0, time.perf_counter()
        bar = tqdm(total=opts.epochs * self.steps_per_epoch, initial=self.step, desc="train",
                   disable=not (opts.progress and ctx.is_main))
        try:
            while self.epoch < opts.epochs and not self._stop():
                self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch * opts.batch_size)
                for batch in self.train_loader:
                    logs = self.train_step(batch)
                    n = batch["camera"].shape[0]
                    samples += n * ctx.world_size
                    self.step += 1
                    self.batch_in_epoch += 1
                    self.epoch_loss_sum += logs["loss"] * n
                    self.epoch_samples += n
                    for key, value in logs.items():
                        self.scalars.add_scalar(f"train/{key}", value, self.step)
                    bar.update(1)
                    bar.set_postfix(epoch=self.epoch + 1, loss=f"{logs['loss']:.3f}", lr=f"{logs['lr']:.2e}")
                    if self._stop():
                        break
                if self.batch_in_epoch >= self.steps_per_epoch:
                    self._finish_epoch()
                else:  # stopped by --max-steps inside the epoch: save so that --resume continues from here
                    self._save(best=False)
        finally:
            bar.close()
        elapsed = time.perf_counter() - start
        if ctx.is_main:
            if self.history:
                plot_training_curves(self.history, self.run_dir / "training_curves.png")
            self.scalars.close()
        ddp.barrier(ctx)
        result = TrainResult(self.run_dir, self.epoch, self.step, self.history, self.best_metric,
                             samples / elapsed if elapsed > 0 else 0.0, ctx.is_main)
        return result

    def close(self) -> None:
        ddp.cleanup(self.ctx)


def train(opts: TrainOptions) -> TrainResult:
    trainer = Trainer(opts)
    try:
        return trainer.run()
    finally:
        trainer.close()
