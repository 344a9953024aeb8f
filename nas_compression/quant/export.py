"""Export a fake-quantized PyTorch model to the deployed Q/DQ ONNX graph, count its deployed bytes, and report it."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from .fake import quant_layers, set_quant_enabled
from .onnx_qdq import count_qdq, deployed_weight_bytes, insert_qdq, layer_quant_params

FLOAT_OPSET = 18


@dataclass
class DeployReport:
    """A quantized network exported to its deployed Q/DQ ONNX graph and checked against the fake-quant PyTorch model
    in ONNX Runtime; the classification and the planner deployments fill the fields that apply to them."""

    onnx_path: str
    params: int
    deployed_bytes: int  # every stored tensor of the Q/DQ graph in its deployed dtype
    predicted_bytes: int  # the same computed from the modules: what the searches optimise
    parity_max_abs: dict[str, float]  # max |fake-quant PyTorch - ONNX Runtime| per graph output
    qdq_nodes: dict[str, int]
    latency_ms: float | None = None  # end to end in ONNX Runtime CPU (1 thread, median); None: not timed
    float_accuracy: float | None = None  # classification: the float network's validation accuracy,
    accuracy: float | None = None  # the fake-quant network's (which the deployed graph reproduces)
    onnx_accuracy: float | None = None  # and the deployed graph's in ONNX Runtime
    model_dir: str | None = None  # planner: the model directory around the graph
    float_onnx_bytes: int | None = None  # planner: size of the float32 export
    train_steps: int = 0  # planner: fine-tune steps before quantization

    def to_dict(self) -> dict:
        return asdict(self)


def export_qdq_onnx(
    model: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: list[str],
    output_names: list[str],
) -> onnx.ModelProto:
    """Export ``model`` (float graph, fake quant off) and rewrite it into the Q/DQ deployed graph at ``path``.

    Uses the TorchScript exporter: small graphs export in well under a second, which the latency tables need.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    set_quant_enabled(model, False)
    tmp = path.with_name(path.stem + ".float.tmp.onnx")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                example_inputs,
                str(tmp),
                input_names=input_names,
                output_names=output_names,
                opset_version=FLOAT_OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
    finally:
        set_quant_enabled(model, True)
    graph = onnx.load(str(tmp))
    tmp.unlink()
    return finish_qdq(model, graph, path)


def finish_qdq(model: nn.Module, graph: onnx.ModelProto, path: str | Path) -> onnx.ModelProto:
    """Insert Q/DQ for ``model``'s quantized layers into its float export, check it and save it."""
    graph = insert_qdq(graph, layer_quant_params(model))
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return graph


def predicted_weight_bytes(model: nn.Module) -> int:
    """Deployed bytes of the model's weights computed from the modules (no export): what the search optimises.

    Quantized weights count at their deployed width (int4 packed two per byte) plus per-channel scales and zero
    points and, for INT8, the input scale and zero point; everything else is float32.
    """
    quant = quant_layers(model)
    quant_weights = {id(m.weight) for m in quant.values()}
    total = 0
    for p in model.parameters():
        if id(p) not in quant_weights:
            total += p.numel() * 4
    for name, b in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            total += b.numel() * 4
    for m in quant.values():
        n, out_ch = m.weight.numel(), m.weight.shape[0]
        if m.bits == 16:
            total += n * 2
        elif m.bits == 8:
            total += n + out_ch * 4 + out_ch + 4 + 1  # int8 weights, scales, zero points, input scale + zero point
        elif m.bits == 4:
            total += (n + 1) // 2 + out_ch * 4 + (out_ch + 1) // 2
        else:
            raise ValueError(f"{m.bits}-bit layers are not deployable")
    return total


__all__ = [
    "DeployReport",
    "count_qdq",
    "deployed_weight_bytes",
    "export_qdq_onnx",
    "finish_qdq",
    "predicted_weight_bytes",
]
