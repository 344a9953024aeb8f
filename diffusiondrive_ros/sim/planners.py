"""Baseline planner functions for closed-loop driving: constant velocity, and an IDM route follower (the expert).

A planner function maps a SensorFrame to an (8,3) ego-frame trajectory. Planners that need the simulator's ground
truth (the expert) set ``needs_world = True`` and are called as ``fn(frame, world, route)`` by ``closed_loop.drive``.
"""

from __future__ import annotations

import numpy as np
import shapely

from ..contract import NUM_POSES, POSE_INTERVAL_S
from ..geometry import world_to_ego
from ..runtime.types import SensorFrame
from .world import WorldState

IDM_SUBSTEP_S = 0.1


def constant_velocity_planner(frame: SensorFrame) -> np.ndarray:
    """Keep the current ego-frame velocity for 4 s, heading unchanged."""
    times = np.arange(1, NUM_POSES + 1) * POSE_INTERVAL_S
    vx, vy = (float(v) for v in frame.velocity)
    return np.stack([vx * times, vy * times, np.zeros(NUM_POSES)], -1)


class IDMRoutePlanner:
    """Follow the route centreline with IDM speed control behind the nearest agent on the route."""

    needs_world = True

    def __init__(self, target_speed: float = 10.0, max_accel: float = 1.5, comfort_decel: float = 2.0,
                 min_gap: float = 2.5, time_headway: float = 1.5, lane_half_width: float = 1.8) -> None:
        if not target_speed > 0:
            raise ValueError(f"target_speed must be positive, got {target_speed}")
        self.target_speed = target_speed
        self.max_accel = max_accel
        self.comfort_decel = comfort_decel
        self.min_gap = min_gap
        self.time_headway = time_headway
        self.lane_half_width = lane_half_width

    def _lead(self, world: WorldState, route: shapely.LineString, s_ego: float) -> tuple[float, float]:
        """(arc length of the lead agent's rear on the route, its speed along the route); (inf, 0) if none."""
        best = (np.inf, 0.0)
        for i in range(world.num_agents):
            point = shapely.Point(*world.agent_poses[i, :2])
            if route.distance(point) > self.lane_half_width + world.agent_sizes[i, 1] / 2:
                continue
            s = route.project(point) - world.agent_sizes[i, 0] / 2
            if s_ego < s < best[0]:
                best = (s, float(np.hypot(*world.agent_velocities[i])))
        return best

    def __call__(self, frame: SensorFrame, world: WorldState, route: shapely.LineString) -> np.ndarray:
        s = route.project(shapely.Point(*world.ego_pose[:2]))
        v = float(np.hypot(*world.ego_velocity))
        lead_s, lead_v = self._lead(world, route, s)
        lead_s -= world.ego_length / 2
        poses = []
        steps_per_pose = int(round(POSE_INTERVAL_S / IDM_SUBSTEP_S))
        for k in range(NUM_POSES * steps_per_pose):
            gap = max(lead_s - s, 0.1)
            desired = self.min_gap + v * self.time_headway + v * (v - lead_v) / (2 * np.sqrt(
                self.max_accel * self.comfort_decel))
            accel = self.max_accel * (1 - (v / self.target_speed) ** 4 - (max(desired, 0) / gap) ** 2)
            accel = max(accel, -6.0)
            v_new = max(v + accel * IDM_SUBSTEP_S, 0.0)
            s += 0.5 * (v + v_new) * IDM_SUBSTEP_S
            lead_s += lead_v * IDM_SUBSTEP_S
            v = v_new
            if (k + 1) % steps_per_pose == 0:
                poses.append(_pose_on(route, s))
        return world_to_ego(np.array(poses), world.ego_pose)


def _pose_on(route: shapely.LineString, s: float) -> tuple[float, float, float]:
    s = min(max(s, 0.0), route.length)
    a = route.interpolate(max(s - 1.0, 0.0))
    b = route.interpolate(min(s + 1.0, route.length))
    p = route.interpolate(s)
    return p.x, p.y, float(np.arctan2(b.y - a.y, b.x - a.x))
