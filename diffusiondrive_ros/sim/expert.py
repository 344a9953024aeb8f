"""Training samples from MetaDrive's IDM expert: raw sensors now, the expert's real future 4 s later.

One episode per seed. The episode is stepped at 0.1 s and every step's world snapshot is kept in a short buffer; a
sample for time t is emitted once t + 4 s has been simulated, so ``expert_future`` is what the expert really did.
Sensors that need the physics state at t (LiDAR) are made at t; cameras and rasters are pure functions of the
snapshot and are made when the sample is emitted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..contract import HORIZON_S, NUM_POSES, POSE_INTERVAL_S
from ..data.sample import DrivingSample as SimSample
from ..geometry import world_to_ego
from ..model.config import ModelConfig
from ..runtime.types import SensorFrame
from .bev import bev_semantic_map
from .map_adapter import read_road_map, route_centerline
from .metadrive_env import SIM_DT_S, make_env
from .scenes import legacy_traffic_density
from .sensors.camera import CameraRenderer, CameraRig
from .sensors.ego import EgoMotion, driving_command, ego_frame_velocity
from .sensors.lidar import RayLidarSpec, cast_lidar
from .world import WorldState, read_world

STEPS_PER_POSE = int(round(POSE_INTERVAL_S / SIM_DT_S))
FUTURE_STEPS = STEPS_PER_POSE * NUM_POSES
MAX_EPISODE_S = 120.0
# Perturbed starts / recovery segments (``perturb=True``): every PERTURB_PERIOD_S the ego is displaced sideways and
# turned, then MetaDrive's expert steers it back; samples whose 4 s future would span a displacement are dropped.
PERTURB_FIRST_S = 1.0
PERTURB_PERIOD_S = 10.0
PERTURB_LATERAL_M = (0.5, 1.5)  # |offset| range, sign random
PERTURB_HEADING_DEG = (3.0, 10.0)  # |heading error| range, sign random
RECOVERY_S = 4.0  # samples this long after a displacement are flagged ``perturbed``


def camera_rig_for(config: ModelConfig, width: int = 960) -> CameraRig:
    """The camera rig at ``width`` with the config's source aspect ratio (16:9 for NAVSIM)."""
    height = int(round(width * config.camera.source_height / config.camera.source_width))
    return CameraRig(width=width, height=height)


def agent_boxes_ego(world: WorldState, range_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(N,5) float32 boxes and (N,) int8 kinds of the agents whose centre lies in |x|, |y| < range_m (ego frame)."""
    if world.num_agents == 0:
        return np.zeros((0, 5), np.float32), np.zeros(0, np.int8)
    rel = world_to_ego(world.agent_poses, world.ego_pose)
    sel = (np.abs(rel[:, 0]) < range_m) & (np.abs(rel[:, 1]) < range_m)
    boxes = np.concatenate([rel[sel], world.agent_sizes[sel, :2]], axis=1).astype(np.float32)
    return boxes, world.agent_kinds[sel].astype(np.int8)


def future_in_ego(ego_poses: np.ndarray) -> np.ndarray:
    """(8,3) poses at 0.5 .. 4.0 s in the frame of ``ego_poses[0]``, given poses every sim step from t on."""
    idx = np.arange(1, NUM_POSES + 1) * STEPS_PER_POSE
    return world_to_ego(ego_poses[idx], ego_poses[0])


@dataclass
class _Pending:
    world: WorldState
    lidar: np.ndarray
    acceleration: np.ndarray
    perturbed: bool = False


def perturbation_schedule(seed: int, max_steps: int) -> dict[int, tuple[float, float]]:
    """step -> (lateral offset [m], heading error [rad]) of each displacement in an episode, seeded by ``seed``."""
    rng = np.random.default_rng([seed, 11])
    first = int(round(PERTURB_FIRST_S / SIM_DT_S))
    period = int(round(PERTURB_PERIOD_S / SIM_DT_S))
    out = {}
    for step in range(first, max_steps + 1, period):
        lateral = rng.uniform(*PERTURB_LATERAL_M) * rng.choice((-1.0, 1.0))
        heading = np.deg2rad(rng.uniform(*PERTURB_HEADING_DEG)) * rng.choice((-1.0, 1.0))
        out[step] = (float(lateral), float(heading))
    return out


def _displace_ego(env, lateral_m: float, heading_rad: float) -> None:
    """Move the ego ``lateral_m`` to its left and turn it by ``heading_rad``, keeping its speed along the heading."""
    from .metadrive_env import place_ego

    agent = env.agent
    x, y = (float(v) for v in agent.position[:2])
    heading = float(agent.heading_theta)
    speed = float(np.hypot(*agent.velocity[:2]))
    new_heading = heading + heading_rad
    place_ego(env, x - np.sin(heading) * lateral_m, y + np.cos(heading) * lateral_m, new_heading,
              (speed * np.cos(new_heading), speed * np.sin(new_heading)))


def iter_expert_samples(
    seed: int,
    config: ModelConfig,
    sample_interval_s: float = 0.5,
    max_samples: int | None = None,
    perturb: bool = False,
    *,
    blocks: str | int | None = None,
    traffic_density: float | None = None,
    camera_width: int = 960,
    lidar_spec: RayLidarSpec | None = None,
    max_episode_s: float = MAX_EPISODE_S,
) -> Iterator[SimSample]:
    """Run one IDM-expert episode on the map of ``seed`` and yield a sample every ``sample_interval_s``.

    perturb: displace the ego sideways and turn it every ``PERTURB_PERIOD_S`` (seeded by ``seed``) so that samples
    show off-centre states with the expert's real recovery as their future (see :func:`perturbation_schedule`).
    """
    interval_steps = int(round(sample_interval_s / SIM_DT_S))
    if interval_steps < 1 or abs(interval_steps * SIM_DT_S - sample_interval_s) > 1e-6:
        raise ValueError(f"sample_interval_s must be a positive multiple of {SIM_DT_S} s, got {sample_interval_s}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    density = legacy_traffic_density(seed) if traffic_density is None else traffic_density
    kwargs = {} if blocks is None else {"blocks": blocks}
    env = make_env(seed, traffic_density=density, ego_control="expert", **kwargs)
    try:
        env.reset(seed=seed)
        road_map = read_road_map(env)
        route = route_centerline(env)
        renderer = CameraRenderer(road_map, camera_rig_for(config, camera_width))
        spec = lidar_spec or RayLidarSpec()
        motion = EgoMotion()
        history: deque[np.ndarray] = deque(maxlen=FUTURE_STEPS + 1)  # ego poses from the oldest pending sample on
        pending: deque[tuple[int, _Pending]] = deque()
        emitted = 0
        max_steps = int(round(max_episode_s / SIM_DT_S))
        schedule = perturbation_schedule(seed, max_steps) if perturb else {}
        last_perturb = -10 ** 9
        for step in range(max_steps + 1):
            t = step * SIM_DT_S
            if step in schedule:
                _displace_ego(env, *schedule[step])
                last_perturb = step
                motion = EgoMotion()  # no finite difference across the displacement
            world = read_world(env, t)
            motion.update(t, world.ego_velocity)
            history.append(world.ego_pose.copy())
            if step % interval_steps == 0:
                spans_jump = any(step < p <= step + FUTURE_STEPS for p in schedule)
                if not spans_jump:  # its future would contain a teleport, not what the expert did
                    recovering = step - last_perturb < int(round(RECOVERY_S / SIM_DT_S))
                    pending.append((step, _Pending(world, cast_lidar(env, world, spec),
                                                   motion.acceleration_ego(world.ego_pose[2]), recovering)))
            while pending and step - pending[0][0] >= FUTURE_STEPS:
                start, item = pending.popleft()
                poses = np.array(history)[-(step - start) - 1:]
                yield _make_sample(seed, start * SIM_DT_S, item, poses, road_map, route, renderer, config)
                emitted += 1
                if max_samples is not None and emitted >= max_samples:
                    return
            _, _, terminated, truncated, info = env.step([0.0, 0.0])
            if terminated or truncated or info.get("arrive_dest", False):
                return
    finally:
        env.close()


def _make_sample(seed: int, t: float, item: _Pending, poses: np.ndarray, road_map, route, renderer: CameraRenderer,
                 config: ModelConfig) -> SimSample:
    world = item.world
    heading = float(world.ego_pose[2])
    velocity = ego_frame_velocity(world.ego_velocity, heading)
    frame = SensorFrame(
        cameras=renderer.render(world),
        lidar_points=item.lidar,
        velocity=(float(velocity[0]), float(velocity[1])),
        acceleration=(float(item.acceleration[0]), float(item.acceleration[1])),
        command=driving_command(route, world.ego_pose),
        stamp=float(t),
    )
    boxes, kinds = agent_boxes_ego(world, config.lidar.range_m)
    bev = bev_semantic_map(road_map, world, config.aux_heads.bev_semantic_size, config.lidar.range_m)
    assert len(poses) == FUTURE_STEPS + 1 and HORIZON_S == FUTURE_STEPS * SIM_DT_S
    return SimSample(
        scene_id=f"seed-{seed}", t=float(t), seed=int(seed), frame=frame,
        expert_future=future_in_ego(poses).astype(np.float32), agent_boxes=boxes, agent_kinds=kinds,
        bev_semantic=bev, perturbed=item.perturbed,
    )


def expert_drive_frames(config: ModelConfig, count: int, rate_hz: float, seed: int = 0) -> Iterator[SensorFrame]:
    """``count`` frames of an IDM-expert drive of the (legacy) scene ``seed``, ``1 / rate_hz`` apart from t = 0, with
    cameras resized to the config's source size (for sensor bags)."""
    import dataclasses

    import cv2

    size = (config.camera.source_width, config.camera.source_height)
    t0 = None
    for sample in iter_expert_samples(seed, config, sample_interval_s=1.0 / rate_hz, max_samples=count,
                                      camera_width=size[0]):
        frame = sample.frame
        t0 = sample.t if t0 is None else t0
        cameras = tuple(img if img.shape[1::-1] == size else cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                        for img in frame.cameras)
        yield dataclasses.replace(frame, cameras=cameras, stamp=sample.t - t0)
