"""The IDM route follower (the expert): curve speeds, keeping up with the starting speed, its plans."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from diffusiondrive_ros.runtime.types import SensorFrame
from diffusiondrive_ros.sim.planners import IDMRoutePlanner, curve_speed_profile
from diffusiondrive_ros.sim.world import WorldState

FRAME = SensorFrame((np.zeros((9, 16, 3), np.uint8),) * 3, np.zeros((0, 3), np.float32), (0.0, 0.0), (0.0, 0.0), 1)


def straight_then_arc(radius: float, straight_m: float = 200.0) -> shapely.LineString:
    """A straight road, then a quarter circle of ``radius`` to the left."""
    s = np.arange(0.0, straight_m, 1.0)
    arc = np.linspace(0.0, np.pi / 2, 200)
    points = np.concatenate([np.column_stack([s, np.zeros_like(s)]),
                             np.column_stack([straight_m + radius * np.sin(arc), radius * (1 - np.cos(arc))])])
    return shapely.LineString(points)


def world_at(x: float, y: float, heading: float, speed: float, t: float = 0.0) -> WorldState:
    return WorldState(t, np.array([x, y, heading]), np.array([speed * np.cos(heading), speed * np.sin(heading)]),
                      4.5, 1.9, 1.5, [], np.zeros(0, np.int8), np.zeros((0, 3)), np.zeros((0, 2)), np.zeros((0, 3)))


def test_curve_speeds_hold_the_lateral_acceleration_and_brake_in_time():
    radius, a_lat, decel = 40.0, 4.0, 1.0
    route = straight_then_arc(radius)
    limit = curve_speed_profile(route, a_lat, decel)
    in_curve = limit[210:260]
    np.testing.assert_allclose(in_curve, np.sqrt(a_lat * radius), rtol=0.05)
    # Before the curve: no faster than braking at ``decel`` still reaches the curve speed (curvature is smoothed over
    # a few metres, so the braking starts slightly before the tangent point at 200 m).
    for s in (20, 100, 180):
        assert limit[s] == pytest.approx(np.sqrt(a_lat * radius + 2 * decel * (200 - s)), rel=0.03)
    approach = limit[150:200]  # braking at <= decel towards the curve speed
    dv2 = -np.diff(approach**2)
    assert np.all(dv2 <= 2 * decel + 1e-6)
    assert np.all(np.isfinite(limit)) and limit.min() > 0


def test_the_expert_slows_for_a_tight_curve_and_keeps_a_faster_start():
    route = straight_then_arc(30.0, straight_m=60.0)
    expert = IDMRoutePlanner(target_speed=10.0)
    plan = expert(FRAME, world_at(40.0, 0.0, 0.0, 14.0), route)  # starts at 14 m/s, 20 m before a 30 m curve
    speeds = np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], plan[:, :2]]), axis=0), axis=1) / 0.5
    assert speeds[-1] < np.sqrt(4.0 * 30.0) + 0.5  # in the curve: at most sqrt(a_lat * R)
    # It cruises at the speed it started with (14 m/s), not at its 10 m/s default, on a straight road.
    straight = shapely.LineString([(0, 0), (1000, 0)])
    fast = IDMRoutePlanner(target_speed=10.0)
    plan = fast(FRAME, world_at(0.0, 0.0, 0.0, 14.0), straight)
    assert plan[-1, 0] == pytest.approx(14.0 * 4.0, rel=0.03)
    later = fast(FRAME, world_at(100.0, 0.0, 0.0, 14.0, t=5.0), straight)  # the cruise speed is kept
    assert later[-1, 0] == pytest.approx(14.0 * 4.0, rel=0.03)
    fixed = IDMRoutePlanner(target_speed=10.0, match_initial_speed=False)
    assert fixed(FRAME, world_at(0.0, 0.0, 0.0, 14.0), straight)[-1, 0] < 14.0 * 4.0 - 5.0


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        IDMRoutePlanner(target_speed=0.0)
    with pytest.raises(ValueError):
        IDMRoutePlanner(max_lateral_accel=0.0)
