"""Network outputs -> a validated :class:`PlanResult`, and dense interpolation of the planned poses.

The ROS node publishes what comes out of here, so a non-finite value anywhere in the plan is an error, never a
message: :class:`NonFiniteOutputError` lets callers fall back (e.g. keep the previous plan) on exactly that case.
"""

from __future__ import annotations

import numpy as np

from ..contract import AUX_OUTPUT_NAMES, HORIZON_S, NUM_POSES, POSE_DIM, POSE_INTERVAL_S
from ..geometry import wrap_angle
from .types import PlanResult

PLAN_OUTPUT_NAMES = ("trajectory", "modes", "mode_scores")
AUX_KEYS = frozenset(AUX_OUTPUT_NAMES)


class NonFiniteOutputError(ValueError):
    """The network produced NaN or infinity in the trajectory, the modes or their scores."""


def pose_times() -> np.ndarray:
    """(8,) seconds after the frame of each planned pose: 0.5, 1.0, ..., 4.0."""
    return POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1, dtype=np.float64)


def _require(outputs: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in outputs:
        raise ValueError(f"network outputs lack {name!r}; got keys {sorted(outputs)}")
    return np.asarray(outputs[name])


def _check_plan_shapes(trajectory: np.ndarray, modes: np.ndarray, scores: np.ndarray) -> None:
    if trajectory.ndim != 3 or trajectory.shape[1:] != (NUM_POSES, POSE_DIM):
        raise ValueError(f"trajectory: expected shape (B, {NUM_POSES}, {POSE_DIM}), got {trajectory.shape}")
    batch = trajectory.shape[0]
    if modes.ndim != 4 or modes.shape[0] != batch or modes.shape[2:] != (NUM_POSES, POSE_DIM) or modes.shape[1] == 0:
        raise ValueError(f"modes: expected shape ({batch}, M>0, {NUM_POSES}, {POSE_DIM}), got {modes.shape}")
    if scores.shape != modes.shape[:2]:
        raise ValueError(f"mode_scores: expected shape {modes.shape[:2]}, got {scores.shape}")


def _wrap_headings(poses: np.ndarray) -> np.ndarray:
    out = np.array(poses, dtype=np.float64)
    out[..., 2] = wrap_angle(out[..., 2])
    return out


def to_plan_result(outputs: dict[str, np.ndarray], stamp: float, batch_index: int = 0) -> PlanResult:
    """Pick one batch element of the network outputs and validate it into a :class:`PlanResult`.

    Needs ``trajectory`` (B,8,3), ``modes`` (B,M,8,3), ``mode_scores`` (B,M); every other key (the auxiliary
    outputs) must have the batch dimension and goes, sliced, into ``aux``. Arrays are float64 copies (backends may
    reuse their output buffers), headings wrapped to [-pi, pi), ``best_mode`` the highest score.

    Raises NonFiniteOutputError on any NaN/inf in the selected trajectory, modes or scores; ValueError on bad shapes.
    """
    trajectory, modes, scores = (_require(outputs, name) for name in PLAN_OUTPUT_NAMES)
    _check_plan_shapes(trajectory, modes, scores)
    batch = trajectory.shape[0]
    if not -batch <= batch_index < batch:
        raise ValueError(f"batch_index {batch_index} out of range for batch size {batch}")
    trajectory, modes, scores = trajectory[batch_index], modes[batch_index], scores[batch_index]
    for name, value in zip(PLAN_OUTPUT_NAMES, (trajectory, modes, scores)):
        if not np.isfinite(value).all():
            raise NonFiniteOutputError(f"network output {name!r} of batch element {batch_index} is not finite")
    aux = {}
    for name, value in outputs.items():
        if name in PLAN_OUTPUT_NAMES:
            continue
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] != batch:
            kind = "auxiliary output" if name in AUX_KEYS else "extra output"
            raise ValueError(f"{kind} {name!r}: expected batch dimension {batch}, got shape {value.shape}")
        aux[name] = np.array(value[batch_index])
    return PlanResult(
        trajectory=_wrap_headings(trajectory),
        modes=_wrap_headings(modes),
        mode_scores=np.array(scores, dtype=np.float64),
        times=pose_times(),
        stamp=float(stamp),
        best_mode=int(np.argmax(scores)),
        aux=aux,
    )


def interpolation_times(dt: float = 0.1, include_start: bool = True) -> np.ndarray:
    """Sample times [s] of :func:`interpolate_poses`: k * dt up to the horizon (4.0 s) inclusive.

    Computed as (k * horizon) / n when dt divides the horizon, so that every multiple of the pose interval is hit
    exactly (0.1 * 15 is 1.5000000000000002; 15 * 4.0 / 40 is 1.5).
    """
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    steps = round(HORIZON_S / dt)
    if abs(steps * dt - HORIZON_S) <= 1e-9 * HORIZON_S:
        times = np.arange(steps + 1) * HORIZON_S / steps
    else:
        times = np.arange(int(np.floor(HORIZON_S / dt)) + 1) * dt
    return times if include_start else times[1:]


def interpolate_poses(trajectory: np.ndarray, dt: float = 0.1, include_start: bool = True) -> np.ndarray:
    """Densify the 8 planned poses: (T, 3) x, y, heading at :func:`interpolation_times`.

    The current pose (0, 0, 0) at t = 0 comes first; x, y and the unwrapped heading are interpolated linearly, so a
    plan turning through +-pi does not spin the long way round. Headings come back wrapped to [-pi, pi).
    """
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if trajectory.shape != (NUM_POSES, POSE_DIM):
        raise ValueError(f"trajectory: expected shape ({NUM_POSES}, {POSE_DIM}), got {trajectory.shape}")
    if not np.isfinite(trajectory).all():
        raise NonFiniteOutputError("trajectory to interpolate is not finite")
    knots_t = np.concatenate([[0.0], pose_times()])
    knots = np.concatenate([np.zeros((1, POSE_DIM)), trajectory])
    knots[:, 2] = np.unwrap(knots[:, 2])
    times = interpolation_times(dt, include_start)
    out = np.stack([np.interp(times, knots_t, knots[:, i]) for i in range(POSE_DIM)], axis=-1)
    out[:, 2] = wrap_angle(out[:, 2])
    return out
