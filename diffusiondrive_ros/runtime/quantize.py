"""INT8 post-training quantization of an exported planner graph for ONNX Runtime CPU (and TensorRT via Q/DQ).

Why a scope: the truncated-diffusion head is small (a few % of the FLOPs) but numerically sensitive -- the DDIM
step recovers eps = (x - sqrt(a) x0) / sqrt(1 - a), which amplifies any error in x0 by ~28x -- so by default only
the perception backbone (image/LiDAR encoders and their fusion transformers, where ~all the convolution time goes)
is quantized and the head stays in float.

Formats: ``qdq`` (QuantizeLinear/DequantizeLinear pairs, symmetric int8 weights per channel and symmetric int8
activations, every zero point 0) is the default because TensorRT needs exactly that; ``qoperator`` (QLinearConv,
uint8 activations with a zero point) is a CPU-only option.
"""

from __future__ import annotations

import ast
import fnmatch
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..contract import INPUT_NAMES, NUM_POSES
from ..model.config import ModelConfig
from .types import PlannerInputs

log = logging.getLogger(__name__)

QUANT_FORMATS = ("qdq", "qoperator")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
QUANTIZED_OP_TYPES = ("Conv", "MatMul", "Gemm")
# Scope name -> module-path prefixes (torch name scopes) whose Conv/MatMul/Gemm are quantized; None: all of them.
# "features": the per-frame feature maps -- both encoders with their fusion transformers, the BEV downscale and the
# deformable attention's value maps (computed once per frame, ~all of the convolution time); the diffusion loop
# stays float. "perception": everything but the trajectory head's denoising loop. "all": every node.
_VALUE_MAPS = "model.trajectory_head.diff_decoder.layers.*.cross_bev_attention.value_proj"
QUANT_SCOPES: dict[str, tuple[str, ...] | None] = {
    "features": ("model.backbone", "model.bev_downscale", _VALUE_MAPS),
    "perception": (
        "model.backbone",
        "model.bev_downscale",
        "model.bev_proj",
        "model.status_encoding",
        "model.tf_decoder",
        _VALUE_MAPS,
    ),
    "all": None,
}
DEFAULT_SCOPE = "features"
_NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"

Feeds = dict[str, np.ndarray]


# -- calibration data ---------------------------------------------------------------------------------------------
def planner_feeds(cfg: ModelConfig, inputs: Iterable[PlannerInputs], rng: np.random.Generator | int = 0) -> list[Feeds]:
    """Graph feeds of preprocessed batch-1 inputs, each with start noise drawn like Planner.sample_noise (so the head's
    activations see their deployed range). The callers build the inputs (synthetic frames, dataset samples).

    Input i's noise is drawn from ``rng`` right after input i is produced: a lazy ``inputs`` drawing from the same
    generator interleaves with it.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    feeds = []
    for item in inputs:
        noise = rng.standard_normal((1, cfg.trajectory_head.num_anchors, NUM_POSES, 2), dtype=np.float32)
        feeds.append({"camera": item.camera, "lidar": item.lidar, "status": item.status, "noise": noise})
    if not feeds:
        raise ValueError("no calibration inputs")
    return feeds


def _calibration_reader(feeds: Sequence[Feeds]):
    from onnxruntime.quantization import CalibrationDataReader

    class _FeedReader(CalibrationDataReader):
        """Hands ONNX Runtime's calibrator one input dict at a time."""

        def __init__(self) -> None:
            self._items: Iterator[Feeds] = iter(feeds)

        def get_next(self) -> Feeds | None:
            return next(self._items, None)

        def rewind(self) -> None:
            self._items = iter(feeds)

    return _FeedReader()


# -- node selection -----------------------------------------------------------------------------------------------
def node_module_path(node: onnx.NodeProto) -> str:
    """The innermost torch module path the exporter recorded for a node ("" when it recorded none)."""
    for prop in node.metadata_props:
        if prop.key == _NAME_SCOPES_KEY:
            scopes = [s for s in ast.literal_eval(prop.value) if s.startswith("model")]
            return max(scopes, key=len) if scopes else ""
    return ""


def nodes_in_scope(graph: onnx.GraphProto, scope: str) -> list[str]:
    """Names of the nodes the scope quantizes: every node under the scope's modules (all nodes for "all").

    Not just the Conv/MatMul/Gemm nodes: a convolution whose output is not re-quantized (because the Add/Relu/pool
    after it stays float) cannot become a QLinearConv and runs in fp32 behind a per-run weight DequantizeLinear.
    """
    if scope not in QUANT_SCOPES:
        raise ValueError(f"unknown quantization scope {scope!r}; choose one of {list(QUANT_SCOPES)}")
    prefixes = QUANT_SCOPES[scope]
    picked = []
    for node in graph.node:
        path = node_module_path(node)
        if prefixes is None or any(
            fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p + ".*") for p in prefixes
        ):
            picked.append(node.name)
    return picked


# -- quantization -------------------------------------------------------------------------------------------------
@dataclass
class QuantizeReport:
    path: Path
    quant_format: str
    scope: str
    quantized_nodes: int
    calibration_samples: int
    size_bytes: int
    op_counts: dict[str, int] = field(default_factory=dict)


def quantize_planner(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    feeds: Sequence[Feeds],
    *,
    quant_format: str = "qdq",
    scope: str = DEFAULT_SCOPE,
    calibration_method: str = "minmax",
    op_types: Sequence[str] | None = None,
) -> QuantizeReport:
    """Static INT8 quantization of an exported planner graph, calibrated on ``feeds``.

    qdq: int8 weights (symmetric, per output channel) and int8 activations (symmetric), all zero points 0.
    qoperator: QLinear* ops with uint8 asymmetric activations (CPU only; TensorRT cannot read it).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if quant_format not in QUANT_FORMATS:
        raise ValueError(f"quant_format must be one of {QUANT_FORMATS}, got {quant_format!r}")
    if calibration_method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration_method must be one of {CALIBRATION_METHODS}, got {calibration_method!r}")
    if not feeds:
        raise ValueError("no calibration samples")
    missing = [n for n in INPUT_NAMES if n not in feeds[0]]
    if missing:
        raise ValueError(f"calibration samples lack input(s) {missing}")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    model = onnx.load(str(fp32_path))
    selected = nodes_in_scope(model.graph, scope)
    if not selected:
        raise ValueError(f"scope {scope!r} selects no node in {fp32_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    qdq = quant_format == "qdq"
    log.info("quantizing %d nodes (%s scope, %s) on %d samples", len(selected), scope, quant_format, len(feeds))
    tmp = out_path.with_name(out_path.stem + ".tmp.onnx")
    quantize_static(
        str(fp32_path),
        str(tmp),
        _calibration_reader(feeds),
        quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
        op_types_to_quantize=list(op_types) if op_types else None,
        nodes_to_quantize=selected,
        per_channel=True,
        activation_type=QuantType.QInt8 if qdq else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[calibration_method],
        extra_options={
            "ActivationSymmetric": qdq,
            "WeightSymmetric": True,
            "QDQKeepRemovableActivations": False,
            # one Q/DQ pair per consumer: ONNX Runtime fuses DQ->Conv->Q into QLinearConv only when the DQ feeds
            # that Conv alone (a block input shared with the residual Add otherwise leaves conv1 in fp32)
            "DedicatedQDQPair": True,
        },
    )
    tmp.replace(out_path)
    ops = op_counts(onnx.load(str(out_path)))
    return QuantizeReport(out_path, quant_format, scope, len(selected), len(feeds), out_path.stat().st_size, ops)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """{op type: number of nodes} of a graph."""
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


def qdq_zero_points(path: str | os.PathLike) -> list[int]:
    """Every zero point of every QuantizeLinear/DequantizeLinear node (empty list: no Q/DQ nodes)."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values: list[int] = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            values += [int(v) for v in np.ravel(inits[node.input[2]])]
    return values


@dataclass
class AccuracyReport:
    """Trajectory differences (metres) of a quantized graph from its float graph over the same inputs."""

    max_trajectory_diff: float
    mean_trajectory_diff: float
    max_modes_diff: float
    samples: int


def compare_graphs(
    reference_path: str | os.PathLike, candidate_path: str | os.PathLike, feeds: Iterable[Feeds], threads: int = 2
) -> AccuracyReport:
    """Run both graphs on ONNX Runtime CPU and measure how far the candidate's trajectories move."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sessions = [
        ort.InferenceSession(str(p), sess_options=so, providers=["CPUExecutionProvider"])
        for p in (reference_path, candidate_path)
    ]
    worst, total, modes_worst, count = 0.0, 0.0, 0.0, 0
    for feed in feeds:
        (ref_traj, ref_modes), (got_traj, got_modes) = (s.run(["trajectory", "modes"], feed) for s in sessions)
        diff = np.abs(got_traj - ref_traj)
        worst = max(worst, float(diff.max()))
        total += float(diff.mean())
        modes_worst = max(modes_worst, float(np.abs(got_modes - ref_modes).max()))
        count += 1
    if count == 0:
        raise ValueError("no inputs to compare on")
    return AccuracyReport(worst, total / count, modes_worst, count)


@dataclass
class Int8ExportReport:
    quantize: QuantizeReport
    accuracy: AccuracyReport


def export_int8_onnx(
    model,
    cfg: ModelConfig,
    path: str | os.PathLike,
    *,
    calibration: Sequence[Feeds],
    held_out: Sequence[Feeds],
    quant_format: str = "qdq",
    scope: str = DEFAULT_SCOPE,
    calibration_method: str = "minmax",
    opset: int | None = None,
) -> Int8ExportReport:
    """Export the float graph (with its PyTorch parity check) to a temp dir, quantize it into ``path`` calibrated on
    ``calibration``, and measure the int8 graph against the float one on ``held_out`` feeds (:func:`planner_feeds`)."""
    import tempfile

    from .export import DEFAULT_OPSET, export_onnx

    with tempfile.TemporaryDirectory(prefix="dd_int8_") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        # dense value maps: a whole-map convolution per frame quantizes with the features; the sampled export form
        # would move that work into the float diffusion loop
        export_onnx(model, cfg, fp32, opset=opset or DEFAULT_OPSET, values="dense")
        report = quantize_planner(
            fp32, path, calibration, quant_format=quant_format, scope=scope, calibration_method=calibration_method
        )
        accuracy = compare_graphs(fp32, path, held_out)
    return Int8ExportReport(report, accuracy)
