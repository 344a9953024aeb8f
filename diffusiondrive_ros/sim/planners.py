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
    """Follow the route centreline with IDM speed control behind the nearest agent on the route.

    The cruise speed is ``target_speed``, raised to the ego's speed at the start of a drive (t = 0) when
    ``match_initial_speed`` (so on a road where traffic flows faster, the expert keeps up with it), and lowered ahead
    of curves to keep the lateral acceleration under ``max_lateral_accel`` (braking at ``curve_decel`` before them).
    """

    needs_world = True

    def __init__(self, target_speed: float = 10.0, max_accel: float = 1.5, comfort_decel: float = 2.0,
                 min_gap: float = 2.5, time_headway: float = 1.5, lane_half_width: float = 1.8,
                 max_lateral_accel: float = 4.0, curve_decel: float = 1.0, match_initial_speed: bool = True) -> None:
        if not target_speed > 0:
            raise ValueError(f"target_speed must be positive, got {target_speed}")
        if not (max_lateral_accel > 0 and curve_decel > 0):
            raise ValueError("max_lateral_accel and curve_decel must be positive")
        self.target_speed = target_speed
        self.max_accel = max_accel
        self.comfort_decel = comfort_decel
        self.min_gap = min_gap
        self.time_headway = time_headway
        self.lane_half_width = lane_half_width
        self.max_lateral_accel = max_lateral_accel
        self.curve_decel = curve_decel
        self.match_initial_speed = match_initial_speed
        self._cruise = target_speed
        self._profile: tuple[shapely.LineString, np.ndarray] | None = None

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

    def _speed_limits(self, route: shapely.LineString) -> np.ndarray:
        """Allowed speed every metre along the route (cached per route)."""
        if self._profile is None or self._profile[0] is not route:
            self._profile = (route, curve_speed_profile(route, self.max_lateral_accel, self.curve_decel))
        return self._profile[1]

    def __call__(self, frame: SensorFrame, world: WorldState, route: shapely.LineString) -> np.ndarray:
        s = route.project(shapely.Point(*world.ego_pose[:2]))
        v = float(np.hypot(*world.ego_velocity))
        if world.t == 0.0:  # a drive starts: its cruise speed
            self._cruise = max(self.target_speed, v) if self.match_initial_speed else self.target_speed
        limits = self._speed_limits(route)
        lead_s, lead_v = self._lead(world, route, s)
        lead_s -= world.ego_length / 2
        poses = []
        steps_per_pose = int(round(POSE_INTERVAL_S / IDM_SUBSTEP_S))
        for k in range(NUM_POSES * steps_per_pose):
            cruise = min(self._cruise, float(limits[min(int(s), len(limits) - 1)]))
            gap = max(lead_s - s, 0.1)
            desired = self.min_gap + v * self.time_headway + v * (v - lead_v) / (2 * np.sqrt(
                self.max_accel * self.comfort_decel))
            accel = self.max_accel * (1 - (v / max(cruise, 0.1)) ** 4 - (max(desired, 0) / gap) ** 2)
            accel = max(accel, -6.0)
            v_new = max(v + accel * IDM_SUBSTEP_S, 0.0)
            s += 0.5 * (v + v_new) * IDM_SUBSTEP_S
            lead_s += lead_v * IDM_SUBSTEP_S
            v = v_new
            if (k + 1) % steps_per_pose == 0:
                poses.append(_pose_on(route, s))
        return world_to_ego(np.array(poses), world.ego_pose)


CURVATURE_WINDOW_M = 6.0  # curvature is the heading change over this arc length (smooths polyline corners)


def curve_speed_profile(route: shapely.LineString, max_lateral_accel: float, decel: float) -> np.ndarray:
    """Highest speed [m/s] at each metre of the route: v^2 * curvature <= max_lateral_accel, reached from
    further back by braking at ``decel`` (a backward pass), so the expert slows before a curve, not in it."""
    n = max(int(np.ceil(route.length)) + 1, 2)
    s = np.minimum(np.arange(n, dtype=np.float64), route.length)

    def xy(at: np.ndarray) -> np.ndarray:
        return shapely.get_coordinates(shapely.line_interpolate_point(route, np.clip(at, 0.0, route.length)))

    tangent = xy(s + 0.5) - xy(s - 0.5)
    heading = np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))
    half = int(round(CURVATURE_WINDOW_M / 2))
    lo, hi = np.maximum(np.arange(n) - half, 0), np.minimum(np.arange(n) + half, n - 1)
    curvature = np.abs(heading[hi] - heading[lo]) / np.maximum(s[hi] - s[lo], 1e-6)
    limit = np.sqrt(max_lateral_accel / np.maximum(curvature, 1e-6))
    for i in range(n - 2, -1, -1):  # brake in time: v_i^2 <= v_{i+1}^2 + 2 * decel * 1 m
        limit[i] = min(limit[i], np.sqrt(limit[i + 1] ** 2 + 2.0 * decel))
    return limit


def _pose_on(route: shapely.LineString, s: float) -> tuple[float, float, float]:
    s = min(max(s, 0.0), route.length)
    a = route.interpolate(max(s - 1.0, 0.0))
    b = route.interpolate(min(s + 1.0, route.length))
    p = route.interpolate(s)
    return p.x, p.y, float(np.arctan2(b.y - a.y, b.x - a.x))
