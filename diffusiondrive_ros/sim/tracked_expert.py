"""Training samples from the closed-loop expert: the IDM route planner driven through the LQR tracker.

This is the same expert, vehicle model and sensor pipeline as ``diffusiondrive eval`` uses, so a planner trained
on these samples imitates the driving the PDM score rewards. MetaDrive's own IDM policy (``sim.expert``) drives
with physics and accelerates at up to ~3 m/s², beyond the comfort limit (2.4 m/s²) that every plan is scored
against, and its lane keeping differs from the tracked route following; learning it cost the planner comfort.

Each sample's ``expert_future`` is the path the tracked expert really drove in the 4 s after the sample, not the
plan it made then, so it is smooth and kinematically feasible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..contract import POSE_INTERVAL_S
from ..data.sample import DrivingSample
from ..model.config import ModelConfig
from ..runtime.types import SensorFrame
from .bev import bev_semantic_map
from .closed_loop import drive
from .expert import FUTURE_STEPS, RECOVERY_S, STEPS_PER_POSE, agent_boxes_ego, future_in_ego, perturbation_schedule
from .metadrive_env import SIM_DT_S
from .planners import IDMRoutePlanner
from .scenes import scene_of_seed
from .sensors.lidar import RayLidarSpec
from .world import WorldState

DEFAULT_SCENE_S = 40.0  # drive length when max_samples does not bound it
SPARE_FACTOR = 1.6  # drive this many times the sampled span (perturbation drops ~40% of plan steps)


@dataclass
class Observation:
    """What the planner saw at one planning step, with the step's training targets (boxes, BEV semantics)."""

    step: int  # 0.1 s simulation step
    frame: SensorFrame
    boxes: np.ndarray
    kinds: np.ndarray
    bev: np.ndarray


class SampleObserver:
    """A ``drive(on_plan=...)`` observer keeping every ``every``-th planning step's frame, agent boxes and BEV map."""

    def __init__(self, config: ModelConfig, every: int) -> None:
        self.config, self.every = config, every
        self.observed: list[Observation] = []

    def __call__(self, frame: SensorFrame, world: WorldState, road_map) -> None:
        step = int(round(frame.stamp / SIM_DT_S))
        if (step // STEPS_PER_POSE) % self.every:
            return
        range_m = self.config.lidar.range_m
        boxes, kinds = agent_boxes_ego(world, range_m)
        bev = bev_semantic_map(road_map, world, self.config.aux_heads.bev_semantic_size, range_m)
        self.observed.append(Observation(step, frame, boxes, kinds, bev))


def plans_per_sample(sample_interval_s: float) -> int:
    """Planning steps between samples; the interval must be a positive multiple of the planning period."""
    every = sample_interval_s / POSE_INTERVAL_S
    if not every >= 1 or abs(every - round(every)) > 1e-6:
        raise ValueError(f"sample_interval_s must be a positive multiple of {POSE_INTERVAL_S} s (the planning "
                         f"period), got {sample_interval_s}")
    return int(round(every))


def iter_tracked_expert_samples(
    seed: int,
    config: ModelConfig,
    sample_interval_s: float = 0.5,
    max_samples: int | None = None,
    perturb: bool = False,
    *,
    camera_width: int = 960,
    lidar_spec: RayLidarSpec | None = None,
    target_speed: float | None = None,
    scenes: str = "legacy",
) -> Iterator[DrivingSample]:
    """Drive the scene of ``seed`` with the tracked IDM expert; yield a sample every ``sample_interval_s``.

    scenes: the scene distribution (``sim.scenes``) that turns the seed into a road, traffic and cruise speed.

    perturb: displace the ego sideways and turn it on :func:`sim.expert.perturbation_schedule`; the expert then
    steers back, and samples taken within ``RECOVERY_S`` of a displacement are flagged ``perturbed``. Samples whose
    4 s future spans a displacement, or reaches past a collision or the end of the drive, are dropped.
    target_speed [m/s]: the expert's cruise speed (default: the scene's).
    """
    every = plans_per_sample(sample_interval_s)
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    # Samples around displacements are dropped: drive long enough that max_samples still come out.
    duration = DEFAULT_SCENE_S if max_samples is None else SPARE_FACTOR * max_samples * every * POSE_INTERVAL_S + 9.0
    steps = int(round(duration / SIM_DT_S))
    schedule = perturbation_schedule(seed, steps) if perturb else {}
    observer = SampleObserver(config, every)
    spec = scene_of_seed(int(seed), scenes)
    expert = IDMRoutePlanner(target_speed=spec.cruise_speed if target_speed is None else target_speed)
    log = drive(spec, expert, duration, config=config, camera_width=camera_width, lidar_spec=lidar_spec,
                on_plan=observer, displacements=schedule)
    last_step = len(log.times) - 1
    if log.collision_time is not None:
        last_step = min(last_step, int(round(log.collision_time / SIM_DT_S)))
    emitted = 0
    for item in observer.observed:
        end = item.step + FUTURE_STEPS
        if end > last_step or any(item.step < p <= end for p in schedule):
            continue
        recovering = any(0 <= item.step - p < int(round(RECOVERY_S / SIM_DT_S)) for p in schedule)
        yield DrivingSample(
            scene_id=f"seed-{seed}", t=float(log.times[item.step]), seed=int(seed), frame=item.frame,
            expert_future=future_in_ego(log.ego_poses[item.step:end + 1]).astype(np.float32),
            agent_boxes=item.boxes, agent_kinds=item.kinds, bev_semantic=item.bev, perturbed=recovering,
        )
        emitted += 1
        if max_samples is not None and emitted >= max_samples:
            return
