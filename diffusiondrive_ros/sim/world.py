"""A numpy snapshot of the simulator's dynamic state: the ego and every other traffic participant.

Sensors, the BEV raster, agent labels and the scoring scenes all read this snapshot instead of MetaDrive objects, so
they are pure functions that work the same on a procedural env, a replay env and a recorded log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Kinds of agents, in the order of ``pdm.scene.AgentTrack.kind`` values; ``agent_kinds`` arrays index this tuple.
AGENT_KINDS = ("vehicle", "pedestrian", "cyclist", "static")
DEFAULT_HEIGHTS = {"vehicle": 1.5, "pedestrian": 1.8, "cyclist": 1.7, "static": 1.0}


@dataclass
class WorldState:
    """Everything that moves, world frame, at simulation time ``t`` [s].

    ego_pose (3,) x, y, heading; ego_velocity (2,) world m/s; agent_* arrays have one row per agent.
    """

    t: float
    ego_pose: np.ndarray
    ego_velocity: np.ndarray
    ego_length: float
    ego_width: float
    ego_height: float
    agent_ids: list[str]
    agent_kinds: np.ndarray  # (N,) int8 index into AGENT_KINDS
    agent_poses: np.ndarray  # (N, 3)
    agent_velocities: np.ndarray  # (N, 2) world
    agent_sizes: np.ndarray  # (N, 3) length, width, height

    @property
    def num_agents(self) -> int:
        return len(self.agent_ids)


def _kind_of(obj) -> str | None:
    """Our agent kind of a MetaDrive object, or None for things that are not traffic participants."""
    from metadrive.component.static_object.traffic_object import TrafficObject
    from metadrive.component.traffic_participants.cyclist import Cyclist
    from metadrive.component.traffic_participants.pedestrian import Pedestrian
    from metadrive.component.vehicle.base_vehicle import BaseVehicle

    if isinstance(obj, BaseVehicle):
        return "vehicle"
    if isinstance(obj, Pedestrian):
        return "pedestrian"
    if isinstance(obj, Cyclist):
        return "cyclist"
    if isinstance(obj, TrafficObject):
        return "static"
    return None


def _size_of(obj, kind: str) -> tuple[float, float, float]:
    length = float(getattr(obj, "LENGTH", None) or getattr(obj, "length", 0.0) or 0.5)
    width = float(getattr(obj, "WIDTH", None) or getattr(obj, "width", 0.0) or 0.5)
    height = float(getattr(obj, "HEIGHT", None) or getattr(obj, "height", 0.0) or DEFAULT_HEIGHTS[kind])
    return length, width, height


def read_world(env, t: float) -> WorldState:
    """Snapshot the ego and all traffic participants of a MetaDrive env (procedural or replay)."""
    ego = env.agent
    ego_id = ego.id
    ids, kinds, poses, vels, sizes = [], [], [], [], []
    # Spawn (insertion) order, not id order: MetaDrive's ids are random UUIDs, the spawn order is seeded.
    for obj_id, obj in env.engine.get_objects().items():
        if obj_id == ego_id:
            continue
        kind = _kind_of(obj)
        if kind is None:
            continue
        x, y = obj.position[:2]
        ids.append(str(obj_id))
        kinds.append(AGENT_KINDS.index(kind))
        poses.append((float(x), float(y), float(obj.heading_theta)))
        vel = getattr(obj, "velocity", (0.0, 0.0))
        vels.append((float(vel[0]), float(vel[1])))
        sizes.append(_size_of(obj, kind))
    n = len(ids)
    ex, ey = ego.position[:2]
    ev = ego.velocity
    return WorldState(
        t=float(t),
        ego_pose=np.array([ex, ey, ego.heading_theta], dtype=np.float64),
        ego_velocity=np.array([ev[0], ev[1]], dtype=np.float64),
        ego_length=float(ego.LENGTH),
        ego_width=float(ego.WIDTH),
        ego_height=float(ego.HEIGHT),
        agent_ids=ids,
        agent_kinds=np.array(kinds, dtype=np.int8).reshape(n),
        agent_poses=np.array(poses, dtype=np.float64).reshape(n, 3),
        agent_velocities=np.array(vels, dtype=np.float64).reshape(n, 2),
        agent_sizes=np.array(sizes, dtype=np.float64).reshape(n, 3),
    )
