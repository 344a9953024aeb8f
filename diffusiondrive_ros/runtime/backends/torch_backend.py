"""PyTorch backend: the model itself, eager fp32 by default, on CPU or CUDA.

The reference every other backend is compared against. ``torch.compile`` is opt-in and guarded: compilation errors
surface on the first call, so the planner compiles and runs one warm-up frame at construction and falls back to eager
(with a log line) when that fails. ``compiled`` and ``providers`` say what really runs.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np
import torch
from torch import nn

from ...model.config import ModelConfig
from ..planner import Planner
from ..types import PlannerInputs
from .io import check_input_arrays, planner_input_arrays

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def io_signature(config: ModelConfig) -> tuple:
    """The config fields that fix the network's tensor shapes; a checkpoint must agree with the planner on these."""
    return (
        config.camera.height,
        config.camera.width,
        config.lidar.size,
        config.trajectory_head.num_anchors,
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device, checked: asking for CUDA where there is none is an error, not a silent CPU fallback."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available in this torch build/machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda[:N], got {device!r}")
    return dev


def load_torch_model(
    config: ModelConfig, model_path: str | os.PathLike | None, seed: int, device: torch.device
) -> nn.Module:
    """The lead's checkpoint when given (its I/O must match ``config``), else the model with seeded random weights."""
    if model_path is not None:
        from ...model.checkpoint import load_checkpoint

        model, ckpt_config = load_checkpoint(model_path, map_location=device)
        if io_signature(ckpt_config) != io_signature(config):
            raise ValueError(
                f"checkpoint {model_path} was trained for config {ckpt_config.name!r} with input/output shapes "
                f"{io_signature(ckpt_config)}, but the planner uses {config.name!r} with {io_signature(config)}"
            )
        return model
    from ...model import build_model

    return build_model(config, seed=seed).to(device)


class TorchPlanner(Planner):
    """Runs the PyTorch model under ``torch.inference_mode``.

    Options: ``model`` (an nn.Module to use instead of building/loading one), ``device`` ("cpu" | "cuda[:N]"),
    ``num_threads`` (sets torch's process-wide intra-op thread count), ``compile`` / ``compile_mode``,
    ``precision`` ("fp32"; "fp16"/"bf16" run under autocast), ``return_aux`` (also return the auxiliary outputs).
    """

    backend_name = "torch"

    def __init__(
        self,
        config: ModelConfig,
        model_path: str | os.PathLike | None = None,
        seed: int = 0,
        *,
        model: nn.Module | None = None,
        device: str | torch.device = "cpu",
        num_threads: int | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        precision: str = "fp32",
        return_aux: bool = False,
    ) -> None:
        super().__init__(config, seed)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if model is not None and model_path is not None:
            raise ValueError("pass either model or model_path, not both")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use bf16 on the CPU")
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1, got {num_threads}")
            torch.set_num_threads(num_threads)
            log.info("torch: intra-op threads set to %d (process-wide)", num_threads)
        self.precision = precision
        self.return_aux = return_aux
        net = model if model is not None else load_torch_model(config, model_path, seed, self.device)
        self.model: nn.Module = net.to(self.device).eval()
        self._forward = self.model
        self.compiled = False
        if compile:
            self._try_compile(compile_mode)

    def _try_compile(self, mode: str | None) -> None:
        """Compile and run one warm-up frame; on any failure keep eager and say so."""
        try:
            compiled = torch.compile(self.model, mode=mode)
            self._run(compiled, self._warmup_tensors())
        except Exception as exc:  # compilation problems are many and varied; eager always works
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("torch.compile failed (%s: %s); falling back to eager", type(exc).__name__, first_line[:300])
            torch._dynamo.reset()
            return
        self._forward = compiled
        self.compiled = True
        log.info("torch.compile active (mode=%s)", mode)

    def _warmup_tensors(self) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(0)
        from .io import expected_input_shapes

        shapes = expected_input_shapes(self.config)
        return {name: torch.from_numpy(rng.random(shape, dtype=np.float32)) for name, shape in shapes.items()}

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_AUTOCAST_DTYPES[self.precision])

    def _run(self, forward, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), self._autocast():
            args = [tensors[name].to(self.device, non_blocking=True) for name in ("camera", "lidar", "status", "noise")]
            if self.return_aux:
                return forward(*args, return_aux=True)
            return forward(*args)

    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        return self.run_arrays(planner_input_arrays(inputs, noise))

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named input arrays; returns every output as a float32 numpy array."""
        feeds = check_input_arrays(arrays, self.config)
        outputs = self._run(self._forward, {name: torch.from_numpy(arr) for name, arr in feeds.items()})
        return {name: value.detach().float().cpu().numpy() for name, value in outputs.items()}

    @property
    def providers(self) -> list[str]:
        mode = "compiled" if self.compiled else "eager"
        suffix = "" if self.precision == "fp32" else f":{self.precision}"
        return [f"torch:{self.device}:{mode}{suffix}"]

    def close(self) -> None:
        self._forward = None
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
