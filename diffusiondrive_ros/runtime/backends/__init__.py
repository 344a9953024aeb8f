"""Inference backends behind the :class:`~diffusiondrive_ros.runtime.planner.Planner` interface.

``make_planner(config, "torch" | "onnxruntime" | "tensorrt", model_path, **options)`` is the one entry point. Each
backend module is imported only when it is asked for, so the onnxruntime path does not import torch and a missing
TensorRT only matters to the tensorrt backend.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...model.config import ModelConfig
    from ..planner import Planner

BACKENDS = ("torch", "onnxruntime", "tensorrt")


def make_planner(
    config: ModelConfig,
    backend: str,
    model_path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    **options: Any,
) -> Planner:
    """Build the planner of one backend.

    torch: ``model_path`` is a checkpoint (None: seeded random weights). onnxruntime: an ``.onnx`` file.
    tensorrt: an ``.onnx`` file (engine built through the cache) or a serialized ``.engine``/``.plan``.
    Any backend: a model directory (runtime/model_dir.py), whose own config then replaces ``config``.
    ``options`` go to the backend's constructor (see TorchPlanner, OnnxRuntimePlanner, TensorRTPlanner).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    from ..model_dir import is_model_dir, load_model_dir

    if is_model_dir(model_path):
        config, model_path = load_model_dir(model_path, backend)
    if backend == "torch":
        from .torch_backend import TorchPlanner

        return TorchPlanner(config, model_path, seed, **options)
    if model_path is None:
        raise ValueError(
            f"the {backend} backend needs model_path: an exported .onnx file "
            "(diffusiondrive_ros.runtime.export.export_onnx)"
        )
    if backend == "onnxruntime":
        from .ort_backend import OnnxRuntimePlanner

        return OnnxRuntimePlanner(config, model_path, seed, **options)
    from .trt_backend import TensorRTPlanner

    return TensorRTPlanner(config, model_path, seed, **options)


__all__ = ["BACKENDS", "make_planner"]
