"""Kinematic bicycle model and an LQR trajectory tracker (in the spirit of the nuPlan / NAVSIM LQR tracker).

Reference point: the bicycle is integrated at the **rear axle** (no slip there), while every pose that goes in or
out (EgoState, references, tracked poses) is the **box centre**, which lies ``rear_axle_to_center`` ahead of the rear
axle along the heading. State: x, y, heading, speed v >= 0 (no reversing), steering angle; inputs: acceleration and
steering rate, both clipped to limits. Integration at ``DT``: speed and steering by forward Euler, position along
the chord of the arc driven in the step (midpoint heading), so constant-curvature motion has no Euler drift.

Control, every step k:
- longitudinal LQR on [along-track position error, speed error] of a double integrator, against the time-indexed
  reference pose k, plus the reference acceleration as feed-forward;
- lateral LQR on [cross-track error, heading error, steering error] with steering rate as input, linearised at the
  current speed (gains scheduled on a speed grid and interpolated), against the closest point of the reference path,
  plus the steering (rate) implied by the reference curvature as feed-forward.

Batched internally (leading dim B) so the reference planner tracks all its proposals at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import uniform_filter1d

from ..geometry import wrap_angle
from .constants import DT, NUM_STATES
from .scene import EgoState


@dataclass(frozen=True)
class TrackerParams:
    """Vehicle geometry, actuator limits and LQR weights."""

    wheel_base: float = 2.7
    rear_axle_to_center: float | None = None  # None: half the wheel base
    max_acceleration: float = 4.0  # [m/s^2]
    max_deceleration: float = 8.0  # [m/s^2], positive
    max_steering: float = 0.6  # [rad]
    max_steering_rate: float = 1.0  # [rad/s]
    lon_weights: tuple[float, float] = (1.0, 2.0)  # position error, speed error
    lon_input_weight: float = 4.0
    lat_weights: tuple[float, float, float] = (1.0, 4.0, 0.1)  # cross-track, heading, steering error
    lat_input_weight: float = 2.0
    smoothing_steps: int = 5  # window of the reference speed / curvature smoothing
    search_behind: int = 5  # closest-point search window around the time index
    search_ahead: int = 15
    gain_speeds: tuple[float, float, float] = (1.0, 45.0, 0.5)  # lateral gain schedule: min, max, step [m/s]

    @property
    def rear_offset(self) -> float:
        return self.wheel_base / 2.0 if self.rear_axle_to_center is None else self.rear_axle_to_center


@dataclass
class Control:
    acceleration: float  # [m/s^2]
    steering_rate: float  # [rad/s]


@dataclass
class TrackedTrajectory:
    """Closed-loop states at DT; arrays have an optional leading batch dim: poses (..., T, 3) box centres, world."""

    poses: np.ndarray
    speeds: np.ndarray  # (..., T) [m/s] longitudinal
    lon_accel: np.ndarray  # (..., T) applied acceleration reaching each state ([0]: the ego's measured ax)
    lat_accel: np.ndarray  # (..., T) v * yaw rate
    yaw_rate: np.ndarray  # (..., T) v tan(steering) / L
    steering: np.ndarray  # (..., T)

    def item(self, i: int) -> TrackedTrajectory:
        return TrackedTrajectory(*(getattr(self, f)[i] for f in self.__dataclass_fields__))


@lru_cache(maxsize=8)
def _lon_gain(params: TrackerParams) -> np.ndarray:
    a = np.array([[1.0, DT], [0.0, 1.0]])
    b = np.array([[0.0], [DT]])
    return _dlqr(a[None], b[None], np.diag(params.lon_weights), np.array([[params.lon_input_weight]]))[0, 0]


@lru_cache(maxsize=8)
def _lat_gain_table(params: TrackerParams) -> tuple[np.ndarray, np.ndarray]:
    lo, hi, step = params.gain_speeds
    speeds = np.arange(lo, hi + 1e-9, step)
    q, r = np.diag(params.lat_weights), np.array([[params.lat_input_weight]])
    a = np.tile(np.eye(3), (len(speeds), 1, 1))
    a[:, 0, 1] = speeds * DT
    a[:, 1, 2] = speeds * DT / params.wheel_base
    b = np.tile(np.array([[0.0], [0.0], [DT]]), (len(speeds), 1, 1))
    return speeds, _dlqr(a, b, q, r)[:, 0]


def _dlqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Infinite-horizon discrete LQR gains (S, m, n) for a batch of systems (S, n, n), (S, n, m).

    Riccati value iteration, batched over the systems (scipy's DARE solver is ~30 ms per call, too slow here).
    """
    p = np.broadcast_to(q, a.shape).copy()
    at, bt = a.transpose(0, 2, 1), b.transpose(0, 2, 1)
    for _ in range(20000):
        gain = np.linalg.solve(r + bt @ p @ b, bt @ p @ a)
        p_next = q + at @ p @ (a - b @ gain)
        if np.max(np.abs(p_next - p)) <= tol * max(1.0, float(np.max(np.abs(p)))):
            p = p_next
            break
        p = p_next
    else:
        raise RuntimeError("LQR Riccati iteration did not converge; check the tracker weights")
    return np.linalg.solve(r + bt @ p @ b, bt @ p @ a)


def _lat_gains(params: TrackerParams, speeds: np.ndarray) -> np.ndarray:
    """Gains (B, 3) linearly interpolated on the uniform speed grid of the schedule (clamped at its ends)."""
    grid, table = _lat_gain_table(params)
    pos = np.clip((speeds - grid[0]) / params.gain_speeds[2], 0.0, len(grid) - 1.0)
    low = np.minimum(pos.astype(int), len(grid) - 2)
    frac = (pos - low)[:, None]
    return table[low] * (1.0 - frac) + table[low + 1] * frac


def center_to_rear(poses: np.ndarray, offset: float) -> np.ndarray:
    out = np.array(poses, dtype=np.float64, copy=True)
    out[..., 0] -= offset * np.cos(out[..., 2])
    out[..., 1] -= offset * np.sin(out[..., 2])
    return out


def rear_to_center(poses: np.ndarray, offset: float) -> np.ndarray:
    return center_to_rear(poses, -offset)


@dataclass
class _Reference:
    """Per-reference quantities precomputed once (rear-axle frame), all (B, N) or (B, N, k)."""

    rear: np.ndarray  # (B, N, 3), headings unwrapped
    seg_start: np.ndarray  # (B, N-1, 2)
    seg_vec: np.ndarray  # (B, N-1, 2)
    seg_normal: np.ndarray  # (B, N-1, 2) unit left normal
    speed: np.ndarray  # (B, N) smoothed
    accel: np.ndarray  # (B, N)
    steering: np.ndarray  # (B, N) feed-forward steering angle
    steering_rate: np.ndarray  # (B, N)


def _smooth_extend(values: np.ndarray, window: int) -> np.ndarray:
    """(B, M) per-segment values -> (B, M + 1) per-pose values, smoothed by a centred moving average of ``window``.

    The plan is linear between knots 0.5 s apart, so per-step speeds form a staircase; its moving average over one
    stair is the underlying ramp. Where the window does not fit (the ends), the smoothed ramp is extended linearly
    with its slope over ``window`` samples, so a constant deceleration stays constant up to the horizon.
    """
    half = window // 2
    m = values.shape[1]
    if half == 0 or m < 2 * half + 2:
        last = 2 * values[:, -1:] - values[:, -2:-1] if m > 1 else values[:, -1:]
        return np.concatenate([values, last], 1)
    core = uniform_filter1d(values, 2 * half + 1, axis=1)[:, half : m - half]  # valid at indices half..m-1-half
    span = min(window, core.shape[1] - 1)
    head_slope = (core[:, span] - core[:, 0]) / span
    tail_slope = (core[:, -1] - core[:, -1 - span]) / span
    head = core[:, :1] - head_slope[:, None] * np.arange(half, 0, -1)
    tail = core[:, -1:] + tail_slope[:, None] * np.arange(1, half + 2)
    return np.concatenate([head, core, tail], 1)


def _prepare_reference(reference_world: np.ndarray, params: TrackerParams) -> _Reference:
    ref = np.asarray(reference_world, dtype=np.float64)
    if ref.ndim == 2:
        ref = ref[None]
    if ref.ndim != 3 or ref.shape[-1] != 3 or ref.shape[1] < 2:
        raise ValueError(f"reference must be (T, 3) or (B, T, 3) world poses with T >= 2, got {ref.shape}")
    if not np.isfinite(ref).all():
        raise ValueError("reference contains NaN or infinite values")
    rear = center_to_rear(ref, params.rear_offset)
    rear[..., 2] = np.unwrap(rear[..., 2], axis=-1)
    heading_dir = np.stack([np.cos(rear[..., 2]), np.sin(rear[..., 2])], -1)
    seg_vec = np.diff(rear[..., :2], axis=1)
    seg_len = np.linalg.norm(seg_vec, axis=-1)
    moving = seg_len > 1e-3
    unit = np.where(moving[..., None], seg_vec / np.maximum(seg_len, 1e-9)[..., None], heading_dir[:, :-1])
    normal = np.stack([-unit[..., 1], unit[..., 0]], -1)
    w = params.smoothing_steps
    # Heading reference: the direction the rear axle travels (the only kinematically consistent heading), smoothed
    # over the kinks of the linearly interpolated plan; the pose heading where the reference stands still.
    seg_heading = np.where(moving, np.arctan2(seg_vec[..., 1], seg_vec[..., 0]), rear[:, :-1, 2])
    seg_heading = rear[:, :-1, 2] + wrap_angle(seg_heading - rear[:, :-1, 2])
    path_heading = _smooth_extend(np.unwrap(seg_heading, axis=1), w)
    seg_speed = np.einsum("bnk,bnk->bn", seg_vec, heading_dir[:, :-1]) / DT
    speed_s = _smooth_extend(seg_speed, w)
    accel = np.gradient(speed_s, DT, axis=1)
    dh = np.diff(path_heading, axis=1)
    curvature = _smooth_extend(np.where(seg_len > 0.05, dh / np.maximum(seg_len, 1e-9), 0.0), w)
    steering = np.clip(np.arctan(params.wheel_base * curvature), -params.max_steering, params.max_steering)
    steering_rate = np.gradient(steering, DT, axis=1)
    rear[..., 2] = path_heading
    return _Reference(rear, rear[:, :-1, :2], seg_vec, normal, speed_s, accel, steering, steering_rate)


def _controls(state: np.ndarray, ref: _Reference, t_index: int, params: TrackerParams) -> tuple[np.ndarray, np.ndarray]:
    """Acceleration and steering rate (B,) for rear-axle states (B, 5) = x, y, heading, v, steering."""
    n = ref.rear.shape[1]
    k = int(np.clip(t_index, 0, n - 1))
    x, y, h, v, delta = state.T
    pos = state[:, :2]
    batch = np.arange(state.shape[0])

    # Longitudinal: time-indexed reference pose.
    ref_k = ref.rear[:, k]
    along = (pos[:, 0] - ref_k[:, 0]) * np.cos(ref_k[:, 2]) + (pos[:, 1] - ref_k[:, 1]) * np.sin(ref_k[:, 2])
    lon_err = np.stack([along, v - ref.speed[:, k]], -1)
    accel = ref.accel[:, k] - lon_err @ _lon_gain(params)

    # Lateral: closest point of the reference path within a window around k.
    lo, hi = max(0, k - params.search_behind), min(n - 1, k + params.search_ahead)
    hi = max(hi, lo + 1)
    starts, vecs = ref.seg_start[:, lo:hi], ref.seg_vec[:, lo:hi]
    rel = pos[:, None] - starts
    t = (rel * vecs).sum(-1) / np.maximum((vecs * vecs).sum(-1), 1e-9)
    t = np.minimum(np.maximum(t, 0.0), 1.0)
    dist2 = ((rel - t[..., None] * vecs) ** 2).sum(-1)
    j = np.argmin(dist2, axis=1)
    tj = t[batch, j]
    seg = lo + j
    cross_err = np.einsum("bk,bk->b", rel[batch, j], ref.seg_normal[batch, seg])
    h_ref = ref.rear[batch, seg, 2] + tj * (ref.rear[batch, seg + 1, 2] - ref.rear[batch, seg, 2])
    delta_ref = ref.steering[batch, seg] + tj * (ref.steering[batch, seg + 1] - ref.steering[batch, seg])
    lat_err = np.stack([cross_err, wrap_angle(h - h_ref), delta - delta_ref], -1)
    gains = _lat_gains(params, np.maximum(v, params.gain_speeds[0]))
    steering_rate = ref.steering_rate[batch, seg] - np.einsum("bk,bk->b", gains, lat_err)
    return accel, steering_rate


def _step(
    state: np.ndarray, accel: np.ndarray, steering_rate: np.ndarray, dt: float, params: TrackerParams
) -> tuple[np.ndarray, np.ndarray]:
    """Propagate rear-axle states (B, 5) one Euler step; returns the new states and the applied acceleration."""
    x, y, h, v, delta = state.T
    accel = np.clip(accel, -params.max_deceleration, params.max_acceleration)
    accel = np.maximum(accel, -v / dt)  # stop, never reverse
    rate = np.clip(steering_rate, -params.max_steering_rate, params.max_steering_rate)
    new = np.empty_like(state)
    yaw_step = v * np.tan(delta) / params.wheel_base * dt
    mid_heading = h + 0.5 * yaw_step  # chord direction of the arc driven at constant v and steering
    new[:, 0] = x + v * np.cos(mid_heading) * dt
    new[:, 1] = y + v * np.sin(mid_heading) * dt
    new[:, 2] = h + yaw_step
    new[:, 3] = np.maximum(v + accel * dt, 0.0)
    new[:, 4] = np.clip(delta + rate * dt, -params.max_steering, params.max_steering)
    return new, accel


def ego_to_bicycle(ego: EgoState, params: TrackerParams) -> np.ndarray:
    """Rear-axle bicycle state (5,) from an EgoState; steering is derived from the yaw rate when not given."""
    rear = center_to_rear(ego.pose, params.rear_offset)
    steering = ego.steering
    if steering == 0.0 and ego.yaw_rate != 0.0 and ego.vx > 0.5:
        steering = float(np.arctan(params.wheel_base * ego.yaw_rate / ego.vx))
    steering = float(np.clip(steering, -params.max_steering, params.max_steering))
    return np.array([rear[0], rear[1], rear[2], max(ego.vx, 0.0), steering])


def bicycle_to_ego(state: np.ndarray, accel: float, params: TrackerParams) -> EgoState:
    x, y, h, v, delta = (float(s) for s in state)
    yaw_rate = v * np.tan(delta) / params.wheel_base
    cx, cy, ch = rear_to_center(np.array([x, y, h]), params.rear_offset)
    return EgoState(
        x=float(cx),
        y=float(cy),
        heading=float(wrap_angle(ch)),
        vx=v,
        vy=float(params.rear_offset * yaw_rate),
        ax=float(accel),
        ay=float(v * yaw_rate),
        steering=delta,
        yaw_rate=float(yaw_rate),
    )


def propagate(state: EgoState, control: Control, dt: float = DT, params: TrackerParams | None = None) -> EgoState:
    """Advance the ego one step of ``dt`` seconds under ``control`` (limits applied)."""
    params = params or TrackerParams()
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    new, accel = _step(
        ego_to_bicycle(state, params)[None],
        np.array([control.acceleration]),
        np.array([control.steering_rate]),
        dt,
        params,
    )
    return bicycle_to_ego(new[0], float(accel[0]), params)


class LQRTracker:
    """Tracks world-frame reference poses given at DT, one control per step."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()

    def control(self, state: EgoState, reference: np.ndarray, t_index: int) -> Control:
        """Control for the step from ``t_index`` to ``t_index + 1`` of ``reference`` ((T, 3) world, DT apart)."""
        ref = _prepare_reference(reference, self.params)
        accel, rate = _controls(ego_to_bicycle(state, self.params)[None], ref, t_index, self.params)
        return Control(float(accel[0]), float(rate[0]))

    def propagate(self, state: EgoState, control: Control, dt: float = DT) -> EgoState:
        return propagate(state, control, dt, self.params)

    def simulate_batch(self, ego: EgoState, references: np.ndarray) -> TrackedTrajectory:
        """Track each of (B, T, 3) references from ``ego``; returns states with a leading batch dim."""
        ref = _prepare_reference(references, self.params)
        batch, n = ref.rear.shape[:2]
        states = np.empty((batch, n, 5))
        accels = np.empty((batch, n))
        states[:, 0] = ego_to_bicycle(ego, self.params)
        accels[:, 0] = ego.ax
        for k in range(n - 1):
            accel, rate = _controls(states[:, k], ref, k, self.params)
            states[:, k + 1], accels[:, k + 1] = _step(states[:, k], accel, rate, DT, self.params)
        centre = rear_to_center(states[..., :3], self.params.rear_offset)
        centre[..., 2] = wrap_angle(centre[..., 2])
        speed, steering = states[..., 3], states[..., 4]
        yaw_rate = speed * np.tan(steering) / self.params.wheel_base
        return TrackedTrajectory(centre, speed, accels, speed * yaw_rate, yaw_rate, steering)

    def simulate(self, ego: EgoState, reference_world: np.ndarray) -> TrackedTrajectory:
        """Track one (T, 3) world reference (usually NUM_STATES poses) from ``ego``."""
        reference_world = np.asarray(reference_world, dtype=np.float64)
        if reference_world.ndim != 2:
            raise ValueError(f"reference must be (T, 3), got {reference_world.shape}")
        return self.simulate_batch(ego, reference_world[None]).item(0)


def simulate(ego: EgoState, reference_world: np.ndarray, params: TrackerParams | None = None) -> TrackedTrajectory:
    """Convenience: track a (NUM_STATES, 3) world reference with default (or given) parameters."""
    reference_world = np.asarray(reference_world, dtype=np.float64)
    if reference_world.shape[0] != NUM_STATES:
        raise ValueError(f"reference must have {NUM_STATES} poses at DT, got {reference_world.shape}")
    return LQRTracker(params).simulate(ego, reference_world)
