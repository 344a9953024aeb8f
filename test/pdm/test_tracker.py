"""LQR tracker on the kinematic bicycle: accuracy on standard references, limits, and the per-step API."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from diffusiondrive_ros.pdm import DT, NUM_STATES, Control, EgoState, LQRTracker, TrackerParams, propagate
from diffusiondrive_ros.pdm.tracker import simulate

TIMES = np.arange(NUM_STATES) * DT


def tracking_errors(ego: EgoState, reference: np.ndarray) -> tuple[float, float, float]:
    """Max distance to the reference path, max position error to the time-indexed pose, final position error."""
    tracked = LQRTracker().simulate(ego, reference)
    path = shapely.LineString(reference[:, :2])
    lateral = shapely.distance(path, shapely.points(tracked.poses[:, :2]))
    position = np.linalg.norm(tracked.poses[:, :2] - reference[:, :2], axis=1)
    return float(lateral.max()), float(position.max()), float(position[-1])


def test_straight_line_is_tracked_exactly():
    reference = np.column_stack([12.0 * TIMES, np.zeros(NUM_STATES), np.zeros(NUM_STATES)])
    lateral, position, _ = tracking_errors(EgoState(0.0, 0.0, 0.0, 12.0, 0.0), reference)
    assert lateral < 1e-6 and position < 1e-6


def test_straight_line_from_a_lateral_offset_converges():
    reference = np.column_stack([12.0 * TIMES, np.zeros(NUM_STATES), np.zeros(NUM_STATES)])
    tracked = LQRTracker().simulate(EgoState(0.0, 0.5, 0.0, 12.0, 0.0), reference)
    assert abs(tracked.poses[-1, 1]) < 0.02
    assert np.all(np.diff(np.abs(tracked.poses[:, 1]))[:5] <= 1e-9)  # heads back towards the line at once


@pytest.mark.parametrize("radius", [30.0, 50.0, -80.0])
def test_constant_curvature_arc(radius):
    speed = 10.0
    omega = speed / radius
    reference = np.column_stack([radius * np.sin(omega * TIMES), radius * (1 - np.cos(omega * TIMES)), omega * TIMES])
    lateral, position, _ = tracking_errors(EgoState(0.0, 0.0, 0.0, speed, 0.0, yaw_rate=omega), reference)
    assert lateral < 0.15 and position < 0.2


def test_lane_change():
    speed, width = 15.0, 3.5
    u = TIMES / TIMES[-1]
    y = width * (10 * u**3 - 15 * u**4 + 6 * u**5)
    dy = width * (30 * u**2 - 60 * u**3 + 30 * u**4) / TIMES[-1]
    reference = np.column_stack([speed * TIMES, y, np.arctan2(dy, speed)])
    lateral, position, final = tracking_errors(EgoState(0.0, 0.0, 0.0, speed, 0.0), reference)
    assert lateral < 0.1 and position < 0.1 and final < 0.1


def test_constant_deceleration_is_followed_smoothly():
    reference = np.column_stack([10.0 * TIMES - TIMES**2, np.zeros(NUM_STATES), np.zeros(NUM_STATES)])
    tracked = simulate(EgoState(0.0, 0.0, 0.0, 10.0, 0.0, ax=-2.0), reference)
    np.testing.assert_allclose(tracked.lon_accel, -2.0, atol=0.2)
    assert np.abs(tracked.poses[:, 0] - reference[:, 0]).max() < 0.1


def test_stop_and_hold_never_reverses():
    reference = np.column_stack(
        [np.minimum(5.0 * TIMES - 2.5 * TIMES**2, 2.5), np.zeros(NUM_STATES), np.zeros(NUM_STATES)]
    )
    tracked = LQRTracker().simulate(EgoState(0.0, 0.0, 0.0, 5.0, 0.0), reference)
    assert tracked.speeds.min() >= 0.0
    assert abs(tracked.poses[-1, 0] - 2.5) < 0.3
    assert tracked.speeds[-1] < 0.1


def test_per_step_api_matches_simulate():
    speed, radius = 8.0, 40.0
    omega = speed / radius
    reference = np.column_stack([radius * np.sin(omega * TIMES), radius * (1 - np.cos(omega * TIMES)), omega * TIMES])
    tracker = LQRTracker()
    state = EgoState(0.0, 0.0, 0.0, speed, 0.0)
    poses = [state.pose]
    for k in range(NUM_STATES - 1):
        state = tracker.propagate(state, tracker.control(state, reference, k))
        poses.append(state.pose)
    np.testing.assert_allclose(
        np.array(poses), tracker.simulate(EgoState(0.0, 0.0, 0.0, speed, 0.0), reference).poses, atol=1e-9
    )


def test_propagate_applies_actuator_limits():
    params = TrackerParams()
    state = EgoState(0.0, 0.0, 0.0, 10.0, 0.0)
    nxt = propagate(state, Control(acceleration=-50.0, steering_rate=10.0), DT, params)
    assert nxt.ax == pytest.approx(-params.max_deceleration)
    assert nxt.vx == pytest.approx(10.0 - params.max_deceleration * DT)
    assert nxt.steering == pytest.approx(params.max_steering_rate * DT)
    stopped = propagate(EgoState(0.0, 0.0, 0.0, 0.2, 0.0), Control(-5.0, 0.0), DT, params)
    assert stopped.vx == 0.0  # clamps at standstill
    with pytest.raises(ValueError, match="dt"):
        propagate(state, Control(0.0, 0.0), 0.0)


def test_propagate_reference_point_is_the_centre():
    """A turning car's centre moves sideways relative to its heading (the rear axle does not)."""
    state = EgoState(0.0, 0.0, 0.0, 10.0, 0.0, steering=0.3)
    nxt = propagate(state, Control(0.0, 0.0))
    assert nxt.vy > 0 and nxt.yaw_rate > 0 and nxt.ay > 0


def test_reference_shape_is_checked():
    with pytest.raises(ValueError, match="reference"):
        LQRTracker().simulate(EgoState(0.0, 0.0, 0.0, 1.0, 0.0), np.zeros((NUM_STATES, 2)))
