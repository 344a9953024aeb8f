"""Trajectory smoothing: a noisy plan becomes smooth, keeps its meaning, and continues the ego's motion."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.contract import NUM_POSES, POSE_INTERVAL_S
from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.smoothing import MAX_SHIFT_M, smooth_trajectory
from diffusiondrive_ros.runtime.types import SensorFrame

T = np.arange(1, NUM_POSES + 1) * POSE_INTERVAL_S


def _arc(speed: float, yaw_rate: float) -> np.ndarray:
    heading = yaw_rate * T
    if abs(yaw_rate) < 1e-9:
        return np.stack([speed * T, np.zeros_like(T), heading], 1)
    radius = speed / yaw_rate
    return np.stack([radius * np.sin(heading), radius * (1 - np.cos(heading)), heading], 1)


def _third_difference(plan: np.ndarray) -> float:
    path = np.vstack([np.zeros((1, 2)), plan[:, :2]])
    return float(np.abs(np.diff(path, n=3, axis=0)).max())


def test_a_smooth_plan_is_kept_and_a_noisy_one_is_smoothed():
    clean = _arc(8.0, 0.15)
    kept = smooth_trajectory(clean, (8.0, 0.0))
    assert np.abs(kept[:, :2] - clean[:, :2]).max() < 0.05  # a quartic fits a gentle arc to centimetres
    noisy = clean.copy()
    noisy[:, :2] += np.random.default_rng(0).normal(0.0, 0.4, (NUM_POSES, 2))
    smooth = smooth_trajectory(noisy, (8.0, 0.0))
    assert _third_difference(smooth) < 0.25 * _third_difference(noisy)
    assert np.abs(smooth[:, :2] - clean[:, :2]).mean() < np.abs(noisy[:, :2] - clean[:, :2]).mean()


def test_the_fit_starts_with_the_current_velocity():
    plan = _arc(9.0, 0.0)  # the plan asks for 9 m/s at once; the ego drives 8 m/s
    smooth = smooth_trajectory(plan, (8.0, 0.0), 0.5)
    assert smooth[0, 0] < plan[0, 0]  # the first 0.5 s continues the slower current motion
    assert smooth[-1, 0] == pytest.approx(plan[-1, 0], abs=1.0)


def test_the_raw_plan_is_returned_where_the_fit_would_change_its_meaning():
    stop = np.stack([np.minimum(5.0 * T, 3.0), np.zeros_like(T), np.zeros_like(T)], 1)  # hard stop after 3 m
    out = smooth_trajectory(stop, (5.0, 0.0))
    steps = np.diff(np.vstack([[0.0, 0.0], out[:, :2]]), axis=0)
    assert np.all(np.sum(steps[1:] * steps[:-1], axis=1) >= 0) or np.array_equal(out, stop)
    assert np.abs(out[:, :2] - stop[:, :2]).max() <= MAX_SHIFT_M + 1e-9


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        smooth_trajectory(np.full((NUM_POSES, 3), np.nan), (1.0, 0.0))
    with pytest.raises(ValueError, match="finite"):
        smooth_trajectory(_arc(5.0, 0.0), (np.nan, 0.0))
    with pytest.raises(ValueError, match="8, 3"):
        smooth_trajectory(np.zeros((4, 3)), (1.0, 0.0))


def test_the_planner_applies_the_configs_smoothing_and_noise_scale(tiny_config):
    from dataclasses import replace

    base = tiny_config
    head = replace(base.trajectory_head, trajectory_smoothing="polynomial", sampling_noise_scale=0.0)
    planner = make_planner(replace(base, trajectory_head=head), "torch", None, seed=0)
    assert not planner.sample_noise().any()
    rng = np.random.default_rng(0)
    frame = SensorFrame(cameras=tuple(rng.integers(0, 255, (540, 960, 3), np.uint8) for _ in range(3)),
                        lidar_points=rng.normal(0, 10, (500, 3)).astype(np.float32), velocity=(5.0, 0.0),
                        acceleration=(0.0, 0.0), command=1, stamp=1.0)
    result = planner.plan(frame)
    assert "raw_trajectory" in result.aux and np.isfinite(result.trajectory).all()
    with pytest.raises(ValueError, match="smoothing"):
        make_planner(replace(base, trajectory_head=replace(head, trajectory_smoothing="spline")), "torch", None)
