"""Ego state for the status vector: ego-frame velocity, acceleration by finite differences, and the driving command.

The command is what a navigation system would say: the heading change of the route over the next stretch of road
(left / straight / right), or "unknown" when the ego is not near its route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from ...contract import DRIVING_COMMANDS
from ...geometry import rotate_vectors, wrap_angle

COMMAND_LOOKAHEAD_M = (20.0, 40.0)  # the route's heading change is measured over this window ahead of the ego
TURN_THRESHOLD_RAD = np.deg2rad(30.0)  # |heading change| above this: a turn
MAX_ROUTE_DISTANCE_M = 6.0  # farther from the route than this: command "unknown"


def ego_frame_velocity(velocity_world: np.ndarray, heading: float) -> np.ndarray:
    """World (vx, vy) -> ego frame (forward, left)."""
    return rotate_vectors(np.asarray(velocity_world, dtype=np.float64), -heading)


@dataclass
class EgoMotion:
    """Finite-difference acceleration from successive world velocities; feed :meth:`update` every sim step."""

    _last_velocity: np.ndarray | None = field(default=None, init=False)
    _last_t: float | None = field(default=None, init=False)
    _accel_world: np.ndarray = field(default_factory=lambda: np.zeros(2), init=False)

    def update(self, t: float, velocity_world: np.ndarray) -> None:
        v = np.asarray(velocity_world, dtype=np.float64)[:2]
        if self._last_t is not None and t > self._last_t:
            self._accel_world = (v - self._last_velocity) / (t - self._last_t)
        self._last_velocity, self._last_t = v.copy(), float(t)

    def acceleration_ego(self, heading: float) -> np.ndarray:
        return rotate_vectors(self._accel_world, -heading)


def driving_command(route: shapely.LineString, ego_pose: np.ndarray,
                    lookahead_m: tuple[float, float] = COMMAND_LOOKAHEAD_M) -> int:
    """Index into ``DRIVING_COMMANDS`` from the route's heading change between the ego and ``lookahead_m`` ahead.

    The heading change is the largest (by magnitude) change of the route tangent at the points ``lookahead_m[0]`` ..
    ``lookahead_m[1]`` ahead, relative to the tangent at the ego's projection, so a turn that starts 20-40 m ahead
    is announced while a turn already completed is not.
    """
    if route.is_empty or route.length < 1.0:
        return DRIVING_COMMANDS.index("unknown")
    point = shapely.Point(float(ego_pose[0]), float(ego_pose[1]))
    if route.distance(point) > MAX_ROUTE_DISTANCE_M:
        return DRIVING_COMMANDS.index("unknown")
    s0 = route.project(point)
    h0 = _tangent(route, s0)
    ahead = np.linspace(lookahead_m[0], lookahead_m[1], 5) + s0
    changes = np.array([wrap_angle(_tangent(route, min(s, route.length)) - h0) for s in ahead])
    change = float(changes[np.argmax(np.abs(changes))])
    if change > TURN_THRESHOLD_RAD:
        return DRIVING_COMMANDS.index("left")
    if change < -TURN_THRESHOLD_RAD:
        return DRIVING_COMMANDS.index("right")
    return DRIVING_COMMANDS.index("straight")


def _tangent(line: shapely.LineString, s: float, ds: float = 1.0) -> float:
    a = line.interpolate(max(0.0, min(s - ds, line.length - 2 * ds)))
    b = line.interpolate(min(line.length, max(s + ds, 2 * ds)))
    return float(np.arctan2(b.y - a.y, b.x - a.x))
