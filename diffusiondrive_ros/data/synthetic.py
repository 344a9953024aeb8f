"""A deterministic synthetic scene source with the simulator iterator's signature (no MetaDrive needed).

The ego drives a constant-curvature arc, so the expert future is known in closed form; agents, LiDAR points and
camera pixels are drawn from a generator seeded by (seed, step). Used by the data pipeline's tests and for smoke
runs of ``data generate --source diffusiondrive_ros.data.synthetic:iter_synthetic_samples``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..contract import DRIVING_COMMANDS, NUM_POSES, POSE_INTERVAL_S
from ..model.config import ModelConfig
from ..runtime.types import SensorFrame
from .sample import DrivingSample
from .targets import BEV_CLASS_NAMES, rasterize_boxes

SCENE_SAMPLES = 6  # samples per synthetic episode when max_samples is None
IMAGE_SCALE = 4  # synthetic camera images are the config's source size divided by this
VEHICLE_CLASS = BEV_CLASS_NAMES.index("vehicle")
ROAD_CLASS = BEV_CLASS_NAMES.index("road")


def arc_poses(speed: float, curvature: float, times: np.ndarray) -> np.ndarray:
    """Ego-frame poses (len(times), 3) after driving ``speed * t`` metres on an arc of the given curvature."""
    s = speed * np.asarray(times, dtype=np.float64)
    heading = curvature * s
    if abs(curvature) < 1e-9:
        x, y = s, np.zeros_like(s)
    else:
        x, y = np.sin(heading) / curvature, (1.0 - np.cos(heading)) / curvature
    return np.stack([x, y, heading], -1)


def iter_synthetic_samples(
    seed: int,
    config: ModelConfig,
    sample_interval_s: float = 0.5,
    max_samples: int | None = None,
    perturb: bool = False,
) -> Iterator[DrivingSample]:
    """Yield ``max_samples`` (default SCENE_SAMPLES) deterministic samples of scene ``seed``."""
    scene_rng = np.random.default_rng([seed, 0])
    speed = float(scene_rng.uniform(3.0, 12.0))
    curvature = float(scene_rng.uniform(-0.03, 0.03))
    command = 0 if curvature > 0.01 else 2 if curvature < -0.01 else 1
    height = config.camera.source_height // IMAGE_SCALE
    width = config.camera.source_width // IMAGE_SCALE
    bev_size = tuple(int(v) for v in config.aux_heads.bev_semantic_size)
    future = arc_poses(speed, curvature, POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1)).astype(np.float32)
    count = SCENE_SAMPLES if max_samples is None else max_samples
    for step in range(count):
        rng = np.random.default_rng([seed, step + 1])
        n_agents = int(rng.integers(0, 40))
        boxes = np.column_stack([
            rng.uniform(-40, 40, n_agents), rng.uniform(-40, 40, n_agents), rng.uniform(-np.pi, np.pi, n_agents),
            rng.uniform(3.5, 5.5, n_agents), rng.uniform(1.7, 2.2, n_agents),
        ]).astype(np.float32)
        kinds = rng.integers(0, 4, n_agents).astype(np.int8)
        bev = np.zeros(bev_size, dtype=np.uint8)
        bev[:, bev_size[1] // 2 - bev_size[1] // 8 : bev_size[1] // 2 + bev_size[1] // 8] = ROAD_CLASS
        rasterize_boxes(bev, boxes, VEHICLE_CLASS, config.lidar.range_m)
        points = np.column_stack([
            rng.uniform(-40, 40, 3000), rng.uniform(-40, 40, 3000), rng.uniform(-0.5, 3.0, 3000),
        ]).astype(np.float32)
        cameras = tuple(rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3))
        frame = SensorFrame(
            cameras=cameras, lidar_points=points, velocity=(speed, 0.0), acceleration=(0.0, speed * speed * curvature),
            command=command if not perturb else len(DRIVING_COMMANDS) - 1, stamp=step * sample_interval_s,
        )
        yield DrivingSample(
            scene_id=f"synthetic-{seed}", t=step * sample_interval_s, seed=seed, frame=frame,
            expert_future=future.copy(), agent_boxes=boxes, agent_kinds=kinds, bev_semantic=bev,
        )
