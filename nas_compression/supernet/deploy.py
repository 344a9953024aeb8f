"""Deploy a derived cell network through part 1's path: fold BN, INT8 Q/DQ, calibrate, export, run in ONNX Runtime.

The searched cells are DAGs of the model's own SepConv blocks, pools and 1x1/3x3 ConvBN units, so part 1's fake
quantization and Q/DQ export handle them unchanged; the report holds what the comparison table needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..evaluate.classify import ClassifyData, accuracy
from ..evaluate.latency import TimingConfig, time_onnx
from ..quant.export import export_qdq_onnx, predicted_weight_bytes
from ..quant.fake import assign_precisions, calibrate, fold_batchnorm
from ..quant.onnx_qdq import deployed_weight_bytes
from .ops import fold_conv_bn


@dataclass(frozen=True)
class DeployReport:
    onnx_path: str
    float_accuracy: float
    accuracy: float  # of the fake-quant model, which the deployed graph reproduces
    onnx_accuracy: float  # of the deployed graph in ONNX Runtime
    params: int
    deployed_bytes: int
    predicted_bytes: int
    latency_ms: float  # measured end to end in ONNX Runtime CPU (1 thread, median)
    ort_max_abs_logit_diff: float

    def to_dict(self) -> dict:
        return asdict(self)


def quantize_network(model: nn.Module, data: ClassifyData, bits: int = 8, calib_batches: int = 4) -> nn.Module:
    """Fold every BatchNorm, put every conv and Linear at ``bits`` (16 or 8), calibrate on training images."""
    model.eval()
    fold_batchnorm(model)
    fold_conv_bn(model)
    assign_precisions(model, [("", nn.Conv2d, bits), ("", nn.Linear, bits)])
    n = min(len(data.x_train), calib_batches * 128)
    calibrate(model, (data.x_train[i : i + 128] for i in range(0, n, 128)))
    return model


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
    onnx_acc = float((logits.argmax(1) == data.y_val.numpy()).mean())
    latency = time_onnx(path, {"image": x1.numpy()}, timing or TimingConfig())
    return DeployReport(
        str(path),
        float_acc,
        acc,
        onnx_acc,
        params,
        deployed_weight_bytes(graph),
        predicted_weight_bytes(model),
        latency,
        float(np.abs(logits - ref).max()),
    )
