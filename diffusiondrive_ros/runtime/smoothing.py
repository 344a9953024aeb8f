"""Optional smoothing of a planned trajectory before it goes to a controller.

A small planner's eight waypoints carry independent errors of tens of centimetres. Differentiated three times at
0.5 s spacing they become jerks far beyond what a vehicle (or the PDM comfort limits) allows, although the path
itself is right. ``polynomial`` smoothing fits x(t) and y(t) with quartics that start at the ego (0, 0) with its
current velocity (and longitudinal acceleration), in the least-squares sense over the eight waypoints: jerk is
then linear in time and the plan continues the motion the vehicle already has. Headings follow the fitted
velocity direction.

The fit is refused, and the raw plan returned, where it would change the plan's meaning: a fitted path that
reverses, or one that moves more than ``max_shift_m`` away from any waypoint. Waypoints that zig-zag along the
path by metres (speeds alternating between 3 and 13 m/s) are still fitted: the smooth path is the better reading.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..contract import NUM_POSES, POSE_INTERVAL_S

SMOOTHING_METHODS = ("none", "polynomial")
DEGREE = 4
MIN_HEADING_SPEED = 0.5  # [m/s] below this the fitted velocity direction is noise: keep the planned heading
MAX_SHIFT_M = 4.0  # [m] beyond this the fit is not the same plan any more (a waypoint off by a lane)
START_ACCEL_RANGE = (-4.0, 2.4)  # [m/s^2] a measured start acceleration is clipped to this (comfortable) range


def _times() -> np.ndarray:
    return np.arange(1, NUM_POSES + 1) * POSE_INTERVAL_S


def _fit_axis(
    values: np.ndarray, v0: float, a0: float | None, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of v0 t + a0 t^2 / 2 + c3 t^3 + c4 t^4 (a0 None: c2 t^2 fitted too);
    returns (positions, velocities) at ``times``."""
    first = 2 if a0 is None else 3
    fixed = v0 * times + (0.0 if a0 is None else 0.5 * a0) * times**2
    basis = np.stack([times**k for k in range(first, DEGREE + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, values - fixed, rcond=None)
    d_basis = np.stack([k * times ** (k - 1) for k in range(first, DEGREE + 1)], axis=1)
    d_fixed = v0 + (0.0 if a0 is None else a0) * times
    return fixed + basis @ coef, d_fixed + d_basis @ coef


def smooth_trajectory(
    trajectory: np.ndarray, velocity: Sequence[float], longitudinal_accel: float = 0.0,
    max_shift_m: float = MAX_SHIFT_M,
) -> np.ndarray:
    """(8, 3) ego-frame plan -> the quartic fit anchored at the ego's ego-frame ``velocity`` and, along x, its
    ``longitudinal_accel`` (clipped to the comfort range), so speed changes continue the current ones. The lateral
    start acceleration stays free: a measured ego-frame acceleration misses the centripetal part in a turn.

    Returns the input unchanged where the fit would reverse or stray more than ``max_shift_m`` from the waypoints.
    """
    plan = np.asarray(trajectory, dtype=np.float64)
    if plan.shape != (NUM_POSES, 3) or not np.isfinite(plan).all():
        raise ValueError(f"trajectory must be a finite ({NUM_POSES}, 3) array, got shape {plan.shape}")
    vx, vy = (float(v) for v in velocity)
    ax = float(longitudinal_accel)
    if not np.isfinite([vx, vy, ax]).all():
        raise ValueError(f"velocity and acceleration must be finite, got {velocity!r}, {longitudinal_accel!r}")
    times = _times()
    x, dx = _fit_axis(plan[:, 0], vx, float(np.clip(ax, *START_ACCEL_RANGE)), times)
    y, dy = _fit_axis(plan[:, 1], vy, None, times)
    path = np.stack([x, y], axis=1)
    steps = np.diff(np.vstack([np.zeros((1, 2)), path]), axis=0)
    reverses = np.any(np.sum(steps[1:] * steps[:-1], axis=1) < 0.0)
    if reverses or np.abs(path - plan[:, :2]).max() > max_shift_m:
        return np.asarray(trajectory).copy()
    speed = np.hypot(dx, dy)
    heading = np.where(speed > MIN_HEADING_SPEED, np.arctan2(dy, dx), plan[:, 2])
    return np.concatenate([path, heading[:, None]], axis=1).astype(np.asarray(trajectory).dtype)


def check_method(method: str) -> str:
    if method not in SMOOTHING_METHODS:
        raise ValueError(f"trajectory smoothing must be one of {SMOOTHING_METHODS}, got {method!r}")
    return method
