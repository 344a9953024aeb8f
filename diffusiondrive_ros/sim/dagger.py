"""On-policy data (DAgger): the learned planner drives, the tracked expert labels every state it reaches.

Behaviour cloning only sees states the expert visits; a planner that drifts half a metre meets states it was never
shown and drifts further (the compounding error DAgger, Ross et al. 2011, removes). Here the current planner drives
a training scene in closed loop exactly as in evaluation. At every sampled planning step, the label is what the
tracked expert (the IDM route follower through the LQR tracker, ``sim.tracked_expert``) would drive over the next
4 s *from the state the planner reached*: a shadow rollout that re-plans every 0.5 s against the other agents' logged
motion. Samples are written by ``sim.datagen`` like the expert's (``diffusiondrive data dagger``), so a round's data
is aggregated with the earlier sets and the planner is fine-tuned on all of them.

A drive ends at its first contact or when the planner is farther than ``MAX_ROUTE_DEVIATION_M`` from its route:
the states after either are not ones to learn from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import shapely

from ..data.sample import DrivingSample
from ..geometry import rotate_vectors
from ..model.config import ModelConfig
from ..pdm.scene import EgoState
from ..pdm.tracker import LQRTracker
from ..pdm.trajectory import interpolate_trajectory
from ..runtime.types import SensorFrame
from .closed_loop import DriveLog, drive
from .expert import FUTURE_STEPS, STEPS_PER_POSE, future_in_ego
from .metadrive_env import SIM_DT_S
from .planners import IDMRoutePlanner
from .scenes import scene_of_seed
from .tracked_expert import DEFAULT_SCENE_S, SampleObserver, plans_per_sample
from .world import WorldState

MAX_ROUTE_DEVIATION_M = 6.0  # a drive ends once the planner is this far from its route
DRIVE_MARGIN_S = 4.5  # drive past the last sample so that its 4 s label has logged agents


@lru_cache(maxsize=2)
def _planner(model: str, backend: str, seed: int):  # noqa: ANN202 - runtime.planner.Planner
    """One planner per worker process and model (loading a session per scene would cost more than the scene)."""
    from ..runtime.backends import make_planner
    from ..runtime.model_dir import is_model_dir, load_model_dir

    config, path = load_model_dir(model, backend) if is_model_dir(model) else (None, model)
    if config is None:
        raise ValueError(f"DAgger needs a model directory (planner.onnx + model.yaml), got {model}")
    return make_planner(config, backend, path, seed=seed)


def shadow_expert_future(log: DriveLog, plan_index: int, expert: IDMRoutePlanner,
                         tracker: LQRTracker | None = None) -> np.ndarray | None:
    """(8,3) ego-frame poses the tracked expert drives in the 4 s after plan ``plan_index`` of ``log``, starting
    from the state the drive's planner reached there; None when the log ends (or has no route) before 4 s."""
    tracker = tracker or LQRTracker()
    start = int(round(log.plan_times[plan_index] / SIM_DT_S))
    if log.route is None or start + FUTURE_STEPS >= len(log.world_states):
        return None
    ego: EgoState = log.plan_ego_states[plan_index]
    poses = [ego.pose]
    reference, planned_at = None, start
    for step in range(start, start + FUTURE_STEPS):
        if (step - start) % STEPS_PER_POSE == 0:
            world = _world_with_ego(log.world_states[step], ego)
            reference = interpolate_trajectory(expert(None, world, log.route), ego.pose)
            planned_at = step
        ego = tracker.propagate(ego, tracker.control(ego, reference, step - planned_at))
        poses.append(ego.pose)
    return future_in_ego(np.asarray(poses))


def _world_with_ego(world: WorldState, ego: EgoState) -> WorldState:
    """A copy of a logged snapshot with the ego replaced (the log itself is not changed)."""
    return dataclasses.replace(world, ego_pose=np.asarray(ego.pose, dtype=np.float64),
                               ego_velocity=rotate_vectors(np.array([ego.vx, ego.vy]), ego.heading))


def iter_dagger_samples(
    seed: int,
    config: ModelConfig,
    sample_interval_s: float = 0.5,
    max_samples: int | None = None,
    perturb: bool = False,
    *,
    model: str,
    backend: str = "onnxruntime",
    model_sha256: str | None = None,
    scenes: str = "diverse",
    camera_width: int = 960,
    planner_seed: int = 0,
) -> Iterator[DrivingSample]:
    """Drive the scene of ``seed`` with the planner of ``model`` (a model directory); yield a sample every
    ``sample_interval_s`` labelled by :func:`shadow_expert_future`.

    ``perturb`` is accepted for the sample-source signature and ignored: the planner's own mistakes are the
    perturbations. The model's input shapes must match ``config``'s (the data set is written for ``config``).
    ``model_sha256``: the model directory's fingerprint the data set was started with (a changed model is refused).
    """
    del perturb
    if model_sha256 is not None:
        from ..runtime.model_dir import model_fingerprint

        if model_fingerprint(model) != model_sha256:
            raise ValueError(f"model {model} changed since this DAgger data set was started (fingerprint differs)")
    every = plans_per_sample(sample_interval_s)
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    planner = _planner(str(model), backend, planner_seed)
    if (planner.config.camera, planner.config.lidar) != (config.camera, config.lidar):
        raise ValueError(f"model {model} takes other inputs than config {config.name!r}: camera/LiDAR differ")
    spec = scene_of_seed(int(seed), scenes)
    duration = DEFAULT_SCENE_S if max_samples is None else max_samples * every * SIM_DT_S * STEPS_PER_POSE
    observer = SampleObserver(config, every)

    def plan(frame: SensorFrame) -> np.ndarray:
        return np.asarray(planner.plan(frame).trajectory, dtype=np.float64)

    log = drive(spec, plan, duration + DRIVE_MARGIN_S, config=config, camera_width=camera_width, on_plan=observer,
                stop_on_collision=True, max_route_deviation_m=MAX_ROUTE_DEVIATION_M)
    cruise = max(spec.cruise_speed, float(log.ego_speeds[0]))  # as the tracked expert's data: never below the start
    expert = IDMRoutePlanner(target_speed=cruise, match_initial_speed=False)
    tracker = LQRTracker()
    plan_index = {int(round(t / SIM_DT_S)): i for i, t in enumerate(log.plan_times)}
    contact_step = None if log.collision_time is None else int(round(log.collision_time / SIM_DT_S))
    emitted = 0
    for item in observer.observed:
        if contact_step is not None and item.step + FUTURE_STEPS >= contact_step:
            break
        i = plan_index.get(item.step)
        if i is None or log.route is None:
            continue
        world_xy = log.ego_poses[item.step, :2]
        if log.route.distance(shapely.Point(*world_xy)) > MAX_ROUTE_DEVIATION_M:
            continue
        future = shadow_expert_future(log, i, expert, tracker)
        if future is None:
            break
        yield DrivingSample(
            scene_id=f"seed-{seed}", t=float(log.times[item.step]), seed=int(seed), frame=item.frame,
            expert_future=future.astype(np.float32), agent_boxes=item.boxes, agent_kinds=item.kinds,
            bev_semantic=item.bev, perturbed=False,
        )
        emitted += 1
        if max_samples is not None and emitted >= max_samples:
            return

