"""One-graph ONNX export of the whole planner (backbone, neck, truncated diffusion), checked at export time.

Inputs camera/lidar/status/noise, outputs trajectory/modes/mode_scores (and the auxiliary heads by flag). The DDIM
loop is unrolled with its constants baked in; the start noise is an input, so the graph is deterministic.
Opset 18: Mish and GridSample are native ops there (the down-conversion to 17 is lossy for Mish).
Before tracing, export_rewrites swaps in modules that compute the same function with less work on ONNX Runtime
(``values="auto"``: the BEV value convolution evaluated only where it is sampled, when that is cheaper); the parity
check always compares the graph with the caller's unmodified model.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from ..contract import AUX_OUTPUT_NAMES, INPUT_NAMES, OUTPUT_NAMES
from ..model.config import ModelConfig
from ..model.diffusiondrive import DiffusionDriveModel
from .export_rewrites import rewrite_for_export

log = logging.getLogger(__name__)
DEFAULT_OPSET = 18


class ExportParityError(RuntimeError):
    """The exported graph's outputs differ from PyTorch's beyond tolerance."""


class _PlannerGraph(torch.nn.Module):
    """Tuple-returning wrapper: ONNX outputs in the fixed contract order."""

    def __init__(self, model: DiffusionDriveModel, aux: bool) -> None:
        super().__init__()
        self.model, self.aux = model, aux

    def forward(self, camera, lidar, status, noise):  # noqa: ANN001, ANN201 - traced signature
        out = self.model(camera, lidar, status, noise, return_aux=self.aux)
        names = OUTPUT_NAMES + (AUX_OUTPUT_NAMES if self.aux else ())
        return tuple(out[n] for n in names if n in out)


@dataclass
class ExportReport:
    path: Path
    opset: int
    output_names: list[str]
    max_abs_diff: dict[str, float]
    size_bytes: int
    rewrites: list[str] = field(default_factory=list)


def output_names(model: DiffusionDriveModel, aux: bool) -> list[str]:
    names = list(OUTPUT_NAMES)
    if aux:
        cfg = model.config.aux_heads
        names += [
            n
            for n in AUX_OUTPUT_NAMES
            if (n.startswith("agent") and cfg.agent_head) or (n == "bev_semantic_map" and cfg.bev_semantic_head)
        ]
    return names


def export_onnx(
    model: DiffusionDriveModel,
    cfg: ModelConfig | None,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    aux: bool = False,
    dynamic_batch: bool = False,
    parity_tolerance: float = 1e-4,
    parity_seed: int = 0,
    values: str = "auto",
) -> ExportReport:
    """Export, run the ONNX checker and shape inference, and compare ONNX Runtime CPU with PyTorch.

    ``values``: how the trajectory head's BEV value maps are written ("auto", "dense", "sampled"; see
    export_rewrites). Quantization wants "dense": a whole-map convolution quantizes once per frame, while the sampled
    form moves that work into the float diffusion loop.
    Raises ExportParityError if any output differs by more than ``parity_tolerance`` (metres for trajectories).
    The file is written next to its final name and renamed only once every check has passed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval().cpu()  # the caller's model keeps its device and mode
    names = output_names(model, aux)
    traced = copy.deepcopy(model)
    rewrites = rewrite_for_export(traced, values)
    # a batch-1 example would make torch.export specialise the batch axis to 1 (its 0/1 rule), whatever Dim says
    inputs = model.example_inputs(2 if dynamic_batch else 1, seed=parity_seed)
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=64)
        dynamic_shapes = {n: {0: batch} for n in ("camera", "lidar", "status", "noise")}
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PlannerGraph(traced, aux),
            inputs,
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=names,
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    graph = onnx.load(str(tmp))
    got_opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    if got_opset != opset:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"the exporter produced opset {got_opset}, not the requested {opset} (Mish has no opset-17 form: "
            f"use opset {DEFAULT_OPSET})"
        )
    onnx.checker.check_model(graph, full_check=True)
    graph = onnx.shape_inference.infer_shapes(graph, strict_mode=True)
    onnx.save(graph, str(tmp))
    diffs = check_parity(model, tmp, names, aux, seeds=(parity_seed, parity_seed + 1))
    worst = max(diffs.values())
    if worst > parity_tolerance:
        raise ExportParityError(
            f"ONNX Runtime differs from PyTorch by up to {worst:.3g} (> {parity_tolerance}): {diffs}"
        )
    tmp.replace(path)
    log.info("exported %s (opset %d, rewrites %s), parity max abs diff %.3g", path, opset, rewrites or "none", worst)
    return ExportReport(path, opset, names, diffs, path.stat().st_size, rewrites)


def check_parity(
    model: DiffusionDriveModel, onnx_path: str | Path, names: list[str], aux: bool, seeds: tuple[int, ...] = (0, 1)
) -> dict[str, float]:
    """Max abs difference per output between ONNX Runtime (CPU) and PyTorch eager on random inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    diffs = dict.fromkeys(names, 0.0)
    for seed in seeds:
        inputs = model.example_inputs(1, seed=seed)
        with torch.inference_mode():
            ref = model(*inputs, return_aux=aux)
        got = session.run(names, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
        for n, g in zip(names, got):
            diffs[n] = max(diffs[n], float(np.abs(g - ref[n].numpy()).max()))
    return diffs
