"""Synthetic sensor data, the one source of it: full-size frames for planning, benches and bags, and a training
sample source with the simulator iterator's signature (no MetaDrive needed).

:func:`synthetic_frame` draws three road-like camera images and a roof-LiDAR sweep (ground rings, a car ahead, walls
and sparse far points). :func:`iter_synthetic_samples`: the ego drives a constant-curvature arc, so the expert
future is known in closed form; agents, LiDAR points and camera pixels are drawn from a generator seeded by
(seed, step). Used by the data pipeline's tests and for smoke runs of ``data generate --source
diffusiondrive_ros.data.synthetic:iter_synthetic_samples``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

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
FRAME_POINTS = 30_800  # LiDAR points of a synthetic frame (a 32-beam sweep's order of magnitude)


def synthetic_frame(
    config: ModelConfig,
    rng: np.random.Generator | int = 0,
    stamp: float = 0.0,
    *,
    num_points: int = FRAME_POINTS,
    nan_fraction: float = 0.0,
) -> SensorFrame:
    """A plausible frame at the config's source camera size: sky, road and a lane marking on each camera; a LiDAR
    sweep of ground returns, a car 12-16 m ahead and scattered walls; ``nan_fraction`` of the points non-finite."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    h, w = config.camera.source_height, config.camera.source_width
    image = np.empty((h, w, 3), np.uint8)
    image[: h // 2] = (110, 160, 220)  # sky
    image[h // 2 :] = (80, 80, 85)  # road
    image[h // 2 :, w // 2 - 8 : w // 2 + 8] = 230  # a lane marking
    n_car = min(800, num_points // 4)
    n_ground = (num_points - n_car) * 9 // 10
    n_wall = num_points - n_car - n_ground
    radius = rng.gamma(2.0, 8.0, n_ground)
    azimuth = rng.uniform(-np.pi, np.pi, n_ground)
    ground = np.column_stack([radius * np.cos(azimuth), radius * np.sin(azimuth), rng.normal(0, 0.03, n_ground)])
    car = np.column_stack([rng.uniform(12, 16, n_car), rng.uniform(-1, 1, n_car), rng.uniform(0.3, 1.5, n_car)])
    azimuth = rng.uniform(-np.pi, np.pi, n_wall)
    radius = rng.uniform(3.0, 80.0, n_wall)
    wall = np.column_stack([radius * np.cos(azimuth), radius * np.sin(azimuth), rng.uniform(0.0, 6.0, n_wall)])
    points = np.vstack([ground, car, wall]).astype(np.float32)
    if nan_fraction > 0:
        points[rng.choice(len(points), int(len(points) * nan_fraction), replace=False), 0] = np.nan
    return SensorFrame((image, image.copy(), image.copy()), points, velocity=(8.0, 0.0), acceleration=(0.2, 0.0),
                       command=1, stamp=stamp)


def synthetic_frames(config: ModelConfig, count: int, rate_hz: float, seed: int = 0) -> Iterator[SensorFrame]:
    """``count`` synthetic frames ``1 / rate_hz`` apart from t = 0, from one seeded generator."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield replace(synthetic_frame(config, rng), stamp=i / rate_hz)


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
