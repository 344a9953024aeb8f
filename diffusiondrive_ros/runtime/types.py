"""Data passed between the stages sensors -> preprocess -> backend -> postprocess -> consumers.

Plain numpy containers; no torch, no ROS. The node, the simulator loop and the offline tools all use these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..contract import command_index


@dataclass
class SensorFrame:
    """Raw sensors of one instant, in the ego (base_link) frame: x forward, y left, z up.

    cameras: left-front, front, right-front images, each (H, W, 3) uint8 RGB at the config's source size.
    lidar_points: (N, >=3) float32 x, y, z [m] (extra columns such as intensity are ignored).
    velocity / acceleration: (vx, vy) [m/s] and (ax, ay) [m/s^2] in the ego frame.
    command: index into ``contract.DRIVING_COMMANDS`` (0 left, 1 straight, 2 right, 3 unknown) or its name.
    stamp: seconds (ROS time or simulation time) of the newest sensor in the frame.
    """

    cameras: tuple[np.ndarray, np.ndarray, np.ndarray]
    lidar_points: np.ndarray
    velocity: tuple[float, float] = (0.0, 0.0)
    acceleration: tuple[float, float] = (0.0, 0.0)
    command: int | str = 3
    stamp: float = 0.0

    def command_index(self) -> int:
        return command_index(self.command)


@dataclass
class PlannerInputs:
    """Preprocessed model inputs, batch dimension included: camera (B,3,H,W), lidar (B,1,S,S), status (B,8)."""

    camera: np.ndarray
    lidar: np.ndarray
    status: np.ndarray

    @property
    def batch_size(self) -> int:
        return int(self.camera.shape[0])


@dataclass
class PlanResult:
    """One planned frame in the ego frame at the time of ``stamp``.

    trajectory: (8, 3) x, y, heading of the best mode; modes: (M, 8, 3) every candidate; mode_scores: (M,) in [0, 1];
    times: (8,) seconds after ``stamp`` of each pose; latency_ms: per stage (preprocess, infer, postprocess, total).
    """

    trajectory: np.ndarray
    modes: np.ndarray
    mode_scores: np.ndarray
    times: np.ndarray
    stamp: float = 0.0
    best_mode: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    aux: dict[str, np.ndarray] = field(default_factory=dict)
