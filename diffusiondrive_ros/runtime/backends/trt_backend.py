"""TensorRT backend: the Planner wrapper around :mod:`.trt_engine` (numpy in, numpy out).

Importing this module works without TensorRT; constructing the planner raises
:class:`~.trt_engine.TensorRTUnavailableError` with an install hint when TensorRT or CUDA is missing.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ...contract import INPUT_NAMES, OUTPUT_NAMES
from ...model.config import ModelConfig
from ..planner import Planner
from ..types import PlannerInputs
from .engine_cache import CachedEngine
from .io import check_input_arrays, expected_input_shapes, planner_input_arrays
from .trt_engine import BuildOptions, TensorRTUnavailableError, import_tensorrt, make_runner

log = logging.getLogger(__name__)

__all__ = ["TensorRTPlanner", "TensorRTUnavailableError"]


class TensorRTPlanner(Planner):
    """Runs a TensorRT engine built from the planner's ONNX graph (or a prebuilt ``.engine``).

    Options: ``precision`` ("fp32" | "fp16" (TensorRT 10) | "strongly_typed"), ``cache_dir`` (engine cache;
    default ``<onnx folder>/trt_engines``), ``workspace_gb``, ``cuda_graph`` (replay the execution as a CUDA graph),
    ``device_id``, ``optimization_level``.
    """

    backend_name = "tensorrt"

    def __init__(
        self,
        config: ModelConfig,
        model_path: str | os.PathLike,
        seed: int = 0,
        *,
        precision: str = "fp32",
        cache_dir: str | os.PathLike | None = None,
        workspace_gb: float = 4.0,
        cuda_graph: bool = False,
        device_id: int = 0,
        optimization_level: int | None = None,
    ) -> None:
        super().__init__(config, seed)
        self.trt = import_tensorrt()
        options = BuildOptions(
            precision=precision, workspace_bytes=int(workspace_gb * (1 << 30)), optimization_level=optimization_level
        )
        self.cache_info: CachedEngine | None = None

        def remember(cached: CachedEngine) -> None:
            self.cache_info = cached

        self.runner = make_runner(
            model_path,
            cache_dir=cache_dir,
            options=options,
            cuda_graph=cuda_graph,
            device_id=device_id,
            on_engine=remember,
        )
        self._check_engine_io()
        self.precision = precision
        self._host_in: dict = {}
        self._host_out: dict = {}

    def _check_engine_io(self) -> None:
        runner = self.runner
        if set(runner.input_names) != set(INPUT_NAMES):
            raise ValueError(f"engine inputs {runner.input_names} do not match the contract {list(INPUT_NAMES)}")
        missing = [n for n in OUTPUT_NAMES if n not in runner.output_names]
        if missing:
            raise ValueError(f"engine lacks output(s) {missing}; it has {runner.output_names}")
        expected = expected_input_shapes(self.config)
        for name in INPUT_NAMES:
            got = tuple(runner.buffers[name].shape)
            if got != expected[name]:
                raise ValueError(
                    f"engine input {name!r} has shape {got}, config {self.config.name!r} needs {expected[name]}"
                )

    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        return self.run_arrays(planner_input_arrays(inputs, noise))

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the engine on named input arrays (batch 1); returns every engine output as float32 numpy."""
        import torch

        feeds = check_input_arrays(arrays, self.config)
        if feeds["camera"].shape[0] != 1:
            raise ValueError("the TensorRT planner runs batch 1")
        if not self._host_in:  # pinned staging buffers: asynchronous host<->device copies without re-allocation
            self._host_in = {n: torch.empty_like(b, device="cpu").pin_memory() for n, b in self._inputs().items()}
            self._host_out = {n: torch.empty_like(b, device="cpu").pin_memory() for n, b in self._outputs().items()}
        for name, arr in feeds.items():
            self._host_in[name].copy_(torch.from_numpy(arr))
        outputs = self.runner.run(self._host_in, synchronize=False)
        with torch.cuda.stream(self.runner.stream):
            for name, value in outputs.items():
                self._host_out[name].copy_(value, non_blocking=True)
        self.runner.stream.synchronize()
        return {name: value.float().numpy().copy() for name, value in self._host_out.items()}

    def _inputs(self) -> dict:
        return {n: self.runner.buffers[n] for n in self.runner.input_names}

    def _outputs(self) -> dict:
        return {n: self.runner.buffers[n] for n in self.runner.output_names}

    @property
    def providers(self) -> list[str]:
        graph = ":cuda_graph" if self.runner.uses_cuda_graph else ""
        return [f"tensorrt-{self.trt.__version__}:{self.precision}{graph}"]

    def close(self) -> None:
        self.runner.close()
