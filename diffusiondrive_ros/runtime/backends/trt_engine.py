"""Native TensorRT (10/11 API): build an engine from ONNX and run it with torch CUDA tensors as I/O buffers.

No numpy and no pycuda: torch owns the CUDA context, the stream and the memory, so this module also runs on a bare
GPU machine with only torch and tensorrt (bench/gpu_check.py). ``import tensorrt`` is optional: everything here
raises :class:`TensorRTUnavailableError` with an install hint when it is missing.

Precision: ``"fp32"`` builds the graph as is (TensorRT may use TF32); ``"fp16"`` sets the FP16 builder flag, which
exists on TensorRT 10 only; ``"strongly_typed"`` takes every type from the ONNX graph (TensorRT 11's way to get
FP16/INT8: export an FP16 or Q/DQ graph).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine_cache import CachedEngine, EngineCache, EngineKey, atomic_write_bytes

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "strongly_typed")
INSTALL_HINT = (
    "the tensorrt backend needs NVIDIA TensorRT's Python package (e.g. `pip install tensorrt-cu12` from NVIDIA's "
    "index, or the TensorRT container) and a CUDA build of torch"
)


class TensorRTUnavailableError(ImportError):
    """TensorRT (or CUDA) is not usable in this environment."""


def import_tensorrt():
    """``import tensorrt`` or a clear TensorRTUnavailableError."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailableError(f"{INSTALL_HINT}; import failed: {exc}") from exc
    return trt


def _require_cuda():
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailableError(f"{INSTALL_HINT}; torch reports no CUDA device (torch {torch.__version__})")
    return torch


def gpu_identity(device_id: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device, for the engine cache key."""
    torch = _require_cuda()
    major, minor = torch.cuda.get_device_capability(device_id)
    return torch.cuda.get_device_name(device_id), f"{major}.{minor}"


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings that change the engine (all part of the cache key)."""

    precision: str = "fp32"
    workspace_bytes: int = 4 << 30
    max_batch: int = 1  # upper bound of the optimization profile when the graph has a dynamic batch axis
    optimization_level: int | None = None  # 0..5, TensorRT's default (3) when None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"TensorRT precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.optimization_level is not None and not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be in 0..5, got {self.optimization_level}")

    def as_key_options(self) -> dict[str, Any]:
        return {
            "workspace_bytes": self.workspace_bytes,
            "max_batch": self.max_batch,
            "optimization_level": self.optimization_level,
        }


def _parse_onnx(trt, builder, logger, onnx_path: Path, strongly_typed: bool):
    flags = 0
    if strongly_typed:
        if not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            raise ValueError(f"TensorRT {trt.__version__} has no strongly typed networks; use precision fp32/fp16")
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n  " + "\n  ".join(errors))
    return network, parser


def _add_batch_profile(trt, builder, config, network, max_batch: int) -> None:
    """Give a graph with a dynamic batch axis an optimization profile 1..max_batch (opt 1: latency at batch 1)."""
    profile = None
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if -1 not in shape:
            continue
        if -1 in shape[1:]:
            raise ValueError(f"input {tensor.name!r} has dynamic non-batch dims {shape}; export with fixed sizes")
        profile = profile or builder.create_optimization_profile()
        rest = shape[1:]
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
    if profile is not None:
        config.add_optimization_profile(profile)


def build_engine_bytes(
    onnx_path: str | os.PathLike, options: BuildOptions, timing_cache_path: str | os.PathLike | None = None
) -> bytes:
    """ONNX -> serialized engine, reusing and then updating a persisted timing cache (makes rebuilds fast)."""
    trt = import_tensorrt()
    _require_cuda()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, Path(onnx_path), options.precision == "strongly_typed")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_bytes))
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if options.precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise ValueError(
                f"TensorRT {trt.__version__} removed the FP16 builder flag: export an FP16 ONNX graph and use "
                "precision 'strongly_typed'"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    _add_batch_profile(trt, builder, config, network, options.max_batch)

    timing_cache = None
    if timing_cache_path is not None:
        blob = Path(timing_cache_path).read_bytes() if Path(timing_cache_path).is_file() else b""
        timing_cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(timing_cache, ignore_mismatch=False):
            log.warning(
                "tensorrt: timing cache %s does not match this TensorRT/GPU; starting a new one", timing_cache_path
            )
            timing_cache = config.create_timing_cache(b"")
            config.set_timing_cache(timing_cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if timing_cache_path is not None:
        atomic_write_bytes(timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


_RUNTIME: list = []  # one process-wide IRuntime: it must outlive every engine it deserialized


def _runtime(trt):
    if not _RUNTIME:
        _RUNTIME.append(trt.Runtime(trt.Logger(trt.Logger.WARNING)))
    return _RUNTIME[0]


def deserialize_engine(data: bytes):
    """Serialized bytes -> ICudaEngine (TensorRT returns None on a version/GPU mismatch: raise instead)."""
    trt = import_tensorrt()
    engine = _runtime(trt).deserialize_cuda_engine(data)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize the engine (built by another TensorRT version or GPU?)")
    return engine


def load_or_build_engine(
    onnx_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    options: BuildOptions,
    device_id: int = 0,
) -> CachedEngine:
    """The engine for an ONNX file from the cache in ``cache_dir``, built (with a shared timing cache) if needed."""
    trt = import_tensorrt()
    gpu_name, capability = gpu_identity(device_id)
    key = EngineKey.create(
        onnx_path,
        trt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=capability,
        precision=options.precision,
        builder_options=options.as_key_options(),
    )
    timing_cache = Path(cache_dir) / f"timing-{trt.__version__}-sm{capability.replace('.', '')}.cache"
    return EngineCache(cache_dir).get_or_build(
        key,
        lambda: build_engine_bytes(onnx_path, options, timing_cache),
        deserialize_engine,
        extra={"onnx_path": str(onnx_path)},
    )


def _torch_dtype(trt, dtype):
    import torch

    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    for name, torch_dtype in (("INT64", torch.int64), ("BF16", torch.bfloat16), ("UINT8", torch.uint8)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = torch_dtype
    if dtype not in table:
        raise ValueError(f"unsupported TensorRT tensor type {dtype}")
    return table[dtype]


class TensorRTRunner:
    """One execution context with fixed torch CUDA buffers per tensor name; optional CUDA-graph replay.

    ``run(inputs)`` takes torch tensors (any device) by input name and returns the output buffers by name (CUDA
    tensors, valid until the next call; clone to keep them).
    """

    def __init__(self, engine, batch_size: int = 1, cuda_graph: bool = False, device_id: int = 0) -> None:
        self.trt = import_tensorrt()
        torch = _require_cuda()
        self.torch = torch
        self.device = torch.device("cuda", device_id)
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = torch.cuda.Stream(device=self.device)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        mode_input = self.trt.TensorIOMode.INPUT
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == mode_input]
        self.output_names = [n for n in names if engine.get_tensor_mode(n) != mode_input]
        self.buffers: dict[str, Any] = {}
        for name in self.input_names:
            shape = tuple(engine.get_tensor_shape(name))
            if -1 in shape:
                shape = (batch_size, *shape[1:])
                if not self.context.set_input_shape(name, shape):
                    raise ValueError(f"batch size {batch_size} is outside the engine's profile for {name!r}")
            self._allocate(name, shape)
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if -1 in shape:
                raise RuntimeError(f"output {name!r} has an unresolved shape {shape}")
            self._allocate(name, shape)
        self.graph = None
        self._execute()  # first enqueue: initialises shape-dependent state, required before graph capture
        self.stream.synchronize()
        if cuda_graph:
            self._capture()

    def _allocate(self, name: str, shape: tuple[int, ...]) -> None:
        dtype = _torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
        buf = self.torch.zeros(shape, dtype=dtype, device=self.device)
        self.buffers[name] = buf
        self.context.set_tensor_address(name, buf.data_ptr())

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def _capture(self) -> None:
        torch = self.torch
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self._execute()
            self.graph = graph
            log.info("tensorrt: execution captured in a CUDA graph")
        except Exception as exc:  # some engines (e.g. with host-side loops) cannot be captured
            log.warning("tensorrt: CUDA-graph capture failed (%s); running without it", exc)
            self.graph = None
            torch.cuda.synchronize(self.device)

    @property
    def uses_cuda_graph(self) -> bool:
        return self.graph is not None

    def run(self, inputs: dict[str, Any], synchronize: bool = True) -> dict[str, Any]:
        torch = self.torch
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"missing TensorRT input(s) {missing}; the engine takes {self.input_names}")
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                src, dst = inputs[name], self.buffers[name]
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(
                        f"input {name!r} has shape {tuple(src.shape)}, the engine expects {tuple(dst.shape)}"
                    )
                dst.copy_(src, non_blocking=True)
            if self.graph is not None:
                self.graph.replay()
            else:
                self._execute()
        if synchronize:
            self.stream.synchronize()
        return {name: self.buffers[name] for name in self.output_names}

    def close(self) -> None:
        self.graph = None
        self.context = None
        self.buffers.clear()


def make_runner(
    model_path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    options: BuildOptions | None = None,
    batch_size: int = 1,
    cuda_graph: bool = False,
    device_id: int = 0,
    on_engine: Callable[[CachedEngine], None] | None = None,
) -> TensorRTRunner:
    """A runner from an ``.onnx`` (built through the engine cache) or a serialized ``.engine``/``.plan`` file."""
    import_tensorrt()
    torch = _require_cuda()
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"TensorRT model not found: {path}")
    options = options or BuildOptions()
    with torch.cuda.device(device_id) if device_id else contextlib.nullcontext():
        if path.suffix in (".engine", ".plan", ".trt"):
            engine = deserialize_engine(path.read_bytes())
        elif path.suffix == ".onnx":
            folder = cache_dir if cache_dir is not None else path.parent / "trt_engines"
            cached = load_or_build_engine(path, folder, options, device_id)
            if on_engine is not None:
                on_engine(cached)
            engine = cached.engine
        else:
            raise ValueError(f"TensorRT model must be .onnx, .engine or .plan, got {path.name}")
        return TensorRTRunner(engine, batch_size=batch_size, cuda_graph=cuda_graph, device_id=device_id)
