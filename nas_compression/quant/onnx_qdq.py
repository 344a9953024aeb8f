"""Turn a float ONNX export of a fake-quantized model into the deployed graph: Q/DQ nodes, zero points 0.

The float graph is exported with fake quantization switched off; then, for every quantized layer (found through
its weight initializer, which the exporter names after the parameter):
* INT8: the weight initializer becomes int8 + DequantizeLinear (per-channel, axis = output channels), and the
  layer input gets QuantizeLinear -> DequantizeLinear with the calibrated per-tensor scale (TensorRT's explicit
  quantization pattern; ONNX Runtime CPU runs it as is).
* INT4 (Linear/MatMul only): int4 initializer + DequantizeLinear (opset 21), weight-only.
* FP16: float16 initializer + Cast to float.
The integers and scales come from the same functions the fake-quant modules use, so both sides round identically.

The project's other Q/DQ path, ``diffusiondrive_ros.runtime.quantize``, cannot serve here, nor this one there: it
calibrates a finished float graph in ONNX Runtime (its own scales, activations quantized at node outputs, any op in
a scope, a QOperator form), so its graph would not reproduce the fake-quant model the search measured, and it has no
INT4 weight-only or FP16 layers; this emitter needs the PyTorch modules' quantization state, which a shipped float
graph does not have. They share the graph bookkeeping (``op_counts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter
from torch import nn

from diffusiondrive_ros.runtime.quantize import op_counts

from .fake import QuantLinear, quant_layers, quantize_weight

INT4_OPSET = 21
WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class LayerQuant:
    """What the deployed graph stores for one layer."""

    bits: int
    weight: np.ndarray  # float32 weights (fp16 layers) or integer weights (int8/int4), PyTorch layout (out, ...)
    scale: np.ndarray | None  # per-output-channel weight scale (int8/int4)
    act_scale: float | None  # per-tensor input scale (int8 only)
    is_linear: bool
    source: np.ndarray  # the float weights (to find an initializer the exporter renamed)


def layer_quant_params(model: nn.Module) -> dict[str, LayerQuant]:
    """{weight parameter name: LayerQuant} for every quantized layer of the model."""
    out = {}
    for name, m in quant_layers(model).items():
        key = f"{name}.weight"
        if m.bits == 16:
            w = m.weight.detach().numpy().astype(np.float32)
            out[key] = LayerQuant(16, w, None, None, isinstance(m, QuantLinear), w)
            continue
        q, scale = quantize_weight(m.weight, m.bits)
        act = float(m.act_scale) if m.quantizes_input else None
        out[key] = LayerQuant(
            m.bits,
            q.numpy(),
            scale.detach().numpy().astype(np.float32),
            act,
            isinstance(m, QuantLinear),
            m.weight.detach().numpy().astype(np.float32),
        )
    return out


def _tensor(name: str, array: np.ndarray, dtype: int | None = None) -> TensorProto:
    if dtype == TensorProto.INT4:
        return helper.make_tensor(name, TensorProto.INT4, array.shape, array.astype(np.int8).flatten().tolist())
    return numpy_helper.from_array(array, name)


def _find_initializer(graph: onnx.GraphProto, name: str, source: np.ndarray) -> tuple[int, TensorProto] | None:
    """By name (optionally under a wrapper prefix such as ``model.``), else by value (weights the exporter
    transposed into a renamed constant for MatMul)."""
    for i, init in enumerate(graph.initializer):
        if init.name == name or init.name.endswith("." + name):
            return i, init
    for i, init in enumerate(graph.initializer):
        if tuple(init.dims) in (source.shape, source.T.shape) and init.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(init)
            if np.array_equal(arr, source) or (source.ndim == 2 and np.array_equal(arr, source.T)):
                return i, init
    return None


def _weight_consumers(graph: onnx.GraphProto, name: str) -> list[tuple[onnx.NodeProto, int]]:
    return [(n, i) for n in graph.node for i, inp in enumerate(n.input) if inp == name]


def insert_qdq(model: onnx.ModelProto, layers: dict[str, LayerQuant]) -> onnx.ModelProto:
    """Rewrite the float graph (returned; converted to opset 21 first when INT4 is used).

    Every quantized layer's weight must be found."""
    if any(lq.bits == 4 for lq in layers.values()) and _opset(model) < INT4_OPSET:
        model = version_converter.convert_version(model, INT4_OPSET)  # renames e.g. GridSample modes
    graph = model.graph
    new_nodes: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []  # (node to insert, insert before)
    uses_int4 = False
    missing = []
    for wname, lq in layers.items():
        found = _find_initializer(graph, wname, lq.source)
        if found is None:
            missing.append(wname)
            continue
        idx, init = found
        wname = init.name
        stored = numpy_helper.to_array(init)
        consumers = _weight_consumers(graph, wname)
        if not consumers or any(n.op_type not in WEIGHT_OPS for n, _ in consumers):
            raise ValueError(f"{wname}: expected Conv/Gemm/MatMul consumers, got {[n.op_type for n, _ in consumers]}")
        # The stored layout equals PyTorch's unless the exporter transposed a Linear weight for MatMul.
        transposed = stored.shape != lq.weight.shape
        if transposed and stored.shape != lq.weight.T.shape:
            raise ValueError(f"{wname}: initializer shape {stored.shape} does not match the layer {lq.weight.shape}")
        weight = lq.weight.T if transposed else lq.weight
        axis = 1 if transposed else 0
        del graph.initializer[idx]
        first = consumers[0][0]
        if lq.bits == 16:
            graph.initializer.append(_tensor(wname + "_fp16", weight.astype(np.float16)))
            new_nodes.append(
                (
                    helper.make_node("Cast", [wname + "_fp16"], [wname], to=TensorProto.FLOAT, name=wname + "_cast"),
                    first,
                )
            )
            continue
        qtype = TensorProto.INT4 if lq.bits == 4 else TensorProto.INT8
        uses_int4 |= lq.bits == 4
        zero = np.zeros(lq.scale.shape, np.int8)
        graph.initializer.extend(
            [
                _tensor(wname + "_quantized", np.ascontiguousarray(weight), qtype),
                _tensor(wname + "_scale", lq.scale),
                _tensor(wname + "_zero_point", zero, qtype),
            ]
        )
        new_nodes.append(
            (
                helper.make_node(
                    "DequantizeLinear",
                    [wname + "_quantized", wname + "_scale", wname + "_zero_point"],
                    [wname],
                    axis=axis,
                    name=wname + "_dequantize",
                ),
                first,
            )
        )
        if lq.act_scale is not None:
            for node, _ in consumers:
                x = node.input[0]
                base = f"{wname}_input"
                graph.initializer.extend(
                    [
                        _tensor(base + "_scale", np.array(lq.act_scale, np.float32)),
                        _tensor(base + "_zero_point", np.array(0, np.int8)),
                    ]
                )
                q = helper.make_node(
                    "QuantizeLinear", [x, base + "_scale", base + "_zero_point"], [base + "_q"], name=base + "_quantize"
                )
                dq = helper.make_node(
                    "DequantizeLinear",
                    [base + "_q", base + "_scale", base + "_zero_point"],
                    [base + "_dq"],
                    name=base + "_dequantize",
                )
                node.input[0] = base + "_dq"
                new_nodes += [(q, node), (dq, node)]
    if missing:
        raise ValueError(f"quantized layer weight(s) not found in the ONNX graph: {missing[:5]} (of {len(missing)})")
    for node, before in new_nodes:
        pos = list(graph.node).index(before)
        graph.node.insert(pos, node)
    if uses_int4:
        model.ir_version = max(model.ir_version, 10)
    return model


def _opset(model: onnx.ModelProto) -> int:
    return max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))


def count_qdq(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes of the Q/DQ pattern: QuantizeLinear, DequantizeLinear and (FP16 weights) Cast."""
    ops = op_counts(model)
    return {op: ops.get(op, 0) for op in ("QuantizeLinear", "DequantizeLinear", "Cast")}


def _tensor_bytes(t: TensorProto) -> int:
    n = int(np.prod(t.dims)) if t.dims else 1
    if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
        return (n + 1) // 2
    return n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def deployed_weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of every stored tensor (initializers and Constant nodes) in the deployed format (int4 packed 2/byte)."""
    total = sum(_tensor_bytes(t) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    total += _tensor_bytes(a.t)
    return total
