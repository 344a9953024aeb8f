"""ONNX Runtime backend: one InferenceSession tuned for batch-1 latency, on TensorRT/CUDA/CPU execution providers.

``providers`` reports ``session.get_providers()``: onnxruntime-gpu lists CUDA/TensorRT even on a machine without a
GPU and then silently runs on the CPU, so the requested list says nothing about what really runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...contract import INPUT_NAMES, OUTPUT_NAMES
from ...model.config import ModelConfig
from ..planner import Planner
from ..types import PlannerInputs
from .engine_cache import file_sha256
from .io import check_input_arrays, expected_input_shapes, planner_input_arrays

log = logging.getLogger(__name__)

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
DEFAULT_PROVIDERS = (TRT_EP, CUDA_EP, CPU_EP)
GPU_PROVIDERS = (TRT_EP, CUDA_EP)
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
SPIN_CONFIG_KEY = "session.intra_op.allow_spinning"

ProviderSpec = str | tuple[str, dict[str, Any]]


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency of the package
        raise ImportError("the onnxruntime backend needs the `onnxruntime` (or `onnxruntime-gpu`) package") from exc
    return ort


def resolve_providers(requested: Sequence[ProviderSpec] | None, available: Sequence[str]) -> list[ProviderSpec]:
    """Keep the requested providers (default: TensorRT, CUDA, CPU) that this onnxruntime build offers, in order.

    Unavailable ones are dropped with a log line; nothing left raises ValueError naming what is available.
    """
    wanted = list(requested) if requested is not None else list(DEFAULT_PROVIDERS)
    if not wanted:
        raise ValueError("the provider list is empty")
    kept, dropped = [], []
    for spec in wanted:
        name = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(name, str):
            raise ValueError(f"a provider must be a name or (name, options), got {spec!r}")
        (kept if name in available else dropped).append(spec)
    if dropped and requested is not None:
        log.warning(
            "onnxruntime: provider(s) %s not available here (available: %s); skipped",
            [d[0] if isinstance(d, tuple) else d for d in dropped],
            list(available),
        )
    if not kept:
        raise ValueError(f"none of the requested providers {wanted} is available; available: {list(available)}")
    return kept


def tensorrt_provider_options(
    *,
    device_id: int = 0,
    fp16: bool = False,
    engine_cache_dir: str | os.PathLike | None = None,
    workspace_bytes: int | None = None,
) -> dict[str, str]:
    """Options of ONNX Runtime's TensorRT EP: FP16, engine + timing cache in one folder (engines take minutes)."""
    options = {"device_id": str(device_id), "trt_fp16_enable": str(bool(fp16))}
    if engine_cache_dir is not None:
        folder = str(Path(engine_cache_dir).expanduser())
        Path(folder).mkdir(parents=True, exist_ok=True)
        options.update(
            trt_engine_cache_enable="True",
            trt_engine_cache_path=folder,
            trt_timing_cache_enable="True",
            trt_timing_cache_path=folder,
        )
    if workspace_bytes is not None:
        options["trt_max_workspace_size"] = str(int(workspace_bytes))
    return options


def cuda_provider_options(*, device_id: int = 0, exhaustive_conv_search: bool = True) -> dict[str, str]:
    """Options of the CUDA EP: exhaustive cuDNN algorithm search pays once at start-up for lower steady latency."""
    return {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "EXHAUSTIVE" if exhaustive_conv_search else "HEURISTIC",
        "cudnn_conv_use_max_workspace": "1",
        "do_copy_in_default_stream": "1",
    }


class OnnxRuntimePlanner(Planner):
    """Runs an exported planner ONNX graph with ONNX Runtime.

    Options: ``providers`` (ordered names or (name, options) pairs), ``intra_op_threads`` (default 2),
    ``inter_op_threads`` (1), ``graph_optimization`` ("all"), ``optimized_model_dir`` (cache of the optimized
    graph, CPU/CUDA providers only), ``trt_fp16``, ``trt_engine_cache_dir``, ``device_id``, ``io_binding``
    ("auto": on when a GPU provider runs), ``allow_spinning`` (False).

    Why no spinning by default: ONNX Runtime's idle worker threads busy-wait for the next op. On an idle machine that
    saves a few microseconds per op, but next to other processes (a ROS graph, sensor drivers) the spinning thread
    takes the core the working thread needs: the navsim graph measured ~1.2x faster at batch 1 without it there.
    """

    backend_name = "onnxruntime"

    def __init__(
        self,
        config: ModelConfig,
        model_path: str | os.PathLike,
        seed: int = 0,
        *,
        providers: Sequence[ProviderSpec] | None = None,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
        graph_optimization: str = "all",
        optimized_model_dir: str | os.PathLike | None = None,
        trt_fp16: bool = False,
        trt_engine_cache_dir: str | os.PathLike | None = None,
        device_id: int = 0,
        io_binding: bool | str = "auto",
        allow_spinning: bool = False,
        log_severity: int = 3,
    ) -> None:
        super().__init__(config, seed)
        ort = _import_ort()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {model_path}")
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}, got {graph_optimization!r}"
            )
        if intra_op_threads < 0 or inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 lets onnxruntime choose)")
        if io_binding not in (True, False, "auto"):
            raise ValueError(f"io_binding must be True, False or 'auto', got {io_binding!r}")
        self.model_path = model_path

        chosen = resolve_providers(providers, ort.get_available_providers())
        chosen = [self._with_default_options(spec, trt_fp16, trt_engine_cache_dir, device_id) for spec in chosen]
        names = [spec[0] if isinstance(spec, tuple) else spec for spec in chosen]

        so = ort.SessionOptions()
        so.intra_op_num_threads = intra_op_threads
        so.inter_op_num_threads = inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.enable_mem_pattern = True
        so.enable_cpu_mem_arena = True
        so.log_severity_level = log_severity
        so.add_session_config_entry(SPIN_CONFIG_KEY, "1" if allow_spinning else "0")
        self.allow_spinning = bool(allow_spinning)
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[graph_optimization]

        load_path = model_path
        self.optimized_model_path: Path | None = None
        if optimized_model_dir is not None:
            if any(name not in (CPU_EP, CUDA_EP) for name in names):
                log.info("onnxruntime: optimized-model cache skipped (graphs compiled by %s cannot be saved)", names)
            else:
                cached = Path(optimized_model_dir).expanduser() / self._optimized_name(
                    ort.__version__, names, graph_optimization
                )
                self.optimized_model_path = cached
                if cached.is_file():
                    load_path = cached  # already optimized: skip the optimizer passes at start-up
                    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                else:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    so.optimized_model_filepath = str(cached)

        self.session = ort.InferenceSession(str(load_path), sess_options=so, providers=chosen)
        self._check_graph_io()
        self.output_names = [o.name for o in self.session.get_outputs()]
        active = self.session.get_providers()
        if active and active[0] != names[0]:
            log.warning("onnxruntime: requested %s first but the session runs on %s", names[0], active)
        self._device_id = device_id
        self.use_io_binding = bool(io_binding is True or (io_binding == "auto" and active[0] in GPU_PROVIDERS))

    # -- construction helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _with_default_options(spec: ProviderSpec, trt_fp16: bool, cache_dir, device_id: int) -> ProviderSpec:
        if isinstance(spec, tuple):
            return spec
        if spec == TRT_EP:
            return (spec, tensorrt_provider_options(device_id=device_id, fp16=trt_fp16, engine_cache_dir=cache_dir))
        if spec == CUDA_EP:
            return (spec, cuda_provider_options(device_id=device_id))
        return spec

    def _optimized_name(self, ort_version: str, providers: list[str], level: str) -> str:
        tag = hashlib.sha256(f"{file_sha256(self.model_path)}|{ort_version}|{providers}|{level}".encode()).hexdigest()
        return f"{self.model_path.stem}.ort-opt.{tag[:16]}.onnx"

    def _check_graph_io(self) -> None:
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if set(inputs) != set(INPUT_NAMES):
            raise ValueError(
                f"{self.model_path}: graph inputs {sorted(inputs)} do not match the contract {list(INPUT_NAMES)}"
            )
        missing = [name for name in OUTPUT_NAMES if name not in outputs]
        if missing:
            raise ValueError(f"{self.model_path}: graph lacks output(s) {missing}; it has {outputs}")
        expected = expected_input_shapes(self.config)
        for name, shape in inputs.items():
            static = [(got, want) for got, want in zip(shape[1:], expected[name][1:]) if isinstance(got, int)]
            if len(shape) != len(expected[name]) or any(got != want for got, want in static):
                raise ValueError(
                    f"{self.model_path}: input {name!r} has shape {shape}, but config "
                    f"{self.config.name!r} needs {list(expected[name])} (is it the right config?)"
                )

    # -- inference -----------------------------------------------------------------------------------------------
    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        return self.run_arrays(planner_input_arrays(inputs, noise))

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on named input arrays; returns every graph output by name."""
        feeds = check_input_arrays(arrays, self.config)
        if not self.use_io_binding:
            values = self.session.run(self.output_names, feeds)
            return dict(zip(self.output_names, values))
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, arr)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu()))

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers()) if self.session is not None else []

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
