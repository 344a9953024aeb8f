"""The Planner interface: preprocess -> infer -> postprocess, the same for every backend.

Backends (torch, onnxruntime, tensorrt) implement ``infer`` only; everything around it is shared here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from ..contract import NUM_POSES
from ..model.config import ModelConfig
from .smoothing import check_method, smooth_trajectory
from .types import PlannerInputs, PlanResult, SensorFrame


class Planner(ABC):
    """Plans one frame at a time. Subclasses set ``backend_name`` and implement :meth:`infer`."""

    backend_name: str = "abstract"

    def __init__(self, config: ModelConfig, seed: int = 0) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)
        self.noise_scale = float(config.trajectory_head.sampling_noise_scale)
        if not (np.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ValueError(f"trajectory_head.sampling_noise_scale must be finite and >= 0, got {self.noise_scale}")
        self.smoothing = check_method(config.trajectory_head.trajectory_smoothing)

    # -- stages -------------------------------------------------------------------------------------------------
    def preprocess(self, frame: SensorFrame) -> PlannerInputs:
        from .preprocess import preprocess_frame

        return preprocess_frame(frame, self.config)

    def sample_noise(self, batch_size: int = 1) -> np.ndarray:
        """Start noise epsilon for the truncated diffusion, (B, anchors, 8, 2) float32, from the planner's seed,
        scaled by the config's ``sampling_noise_scale`` (0: all zeros, deterministic denoising from the anchors)."""
        shape = (batch_size, self.config.trajectory_head.num_anchors, NUM_POSES, 2)
        noise = self._rng.standard_normal(shape, dtype=np.float32)
        return noise * np.float32(self.noise_scale) if self.noise_scale != 1.0 else noise

    @abstractmethod
    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network: returns at least ``trajectory`` (B,8,3), ``modes`` (B,M,8,3), ``mode_scores`` (B,M)."""

    def postprocess(self, outputs: dict[str, np.ndarray], stamp: float) -> PlanResult:
        from .postprocess import to_plan_result

        return to_plan_result(outputs, stamp)

    # -- the whole frame ----------------------------------------------------------------------------------------
    def plan(self, frame: SensorFrame) -> PlanResult:
        t0 = time.perf_counter()
        inputs = self.preprocess(frame)
        t1 = time.perf_counter()
        outputs = self.infer(inputs, self.sample_noise(inputs.batch_size))
        t2 = time.perf_counter()
        result = self.postprocess(outputs, frame.stamp)
        if self.smoothing == "polynomial":
            result.aux["raw_trajectory"] = result.trajectory
            result.trajectory = smooth_trajectory(result.trajectory, frame.velocity, frame.acceleration[0])
        t3 = time.perf_counter()
        result.latency_ms = {
            "preprocess": (t1 - t0) * 1e3,
            "infer": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        return result

    @property
    def providers(self) -> list[str]:
        """Execution providers / devices really in use (never the requested list)."""
        return [self.backend_name]

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for backends that hold nothing
        """Release backend resources (sessions, engines, GPU memory)."""
