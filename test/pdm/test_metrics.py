"""PDM sub-metrics on hand-built situations on a straight two-lane road (lane 0 at y = 0, lane 1 at y = 3.5)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from diffusiondrive_ros.pdm import score_trajectory
from diffusiondrive_ros.pdm.evaluation import prepare_scene
from diffusiondrive_ros.pdm.metrics import (
    agent_geometry,
    ego_areas,
    ego_footprint,
    ego_progress_score,
    time_to_collision,
)
from diffusiondrive_ros.pdm.scene import build_map, make_lane
from diffusiondrive_ros.pdm.synthetic import constant_speed_plan, constant_velocity_agent, straight_road_scene

REFERENCE_PROGRESS = 50.0  # fixed EP reference so the tests do not depend on the reference planner


def score(scene, plan):
    return score_trajectory(scene, plan, reference_progress=REFERENCE_PROGRESS)


# --- NC --------------------------------------------------------------------------------------------------------


def test_head_on_collision_is_at_fault():
    oncoming = constant_velocity_agent("oncoming", 40.0, 0.0, np.pi, 10.0)
    result = score(straight_road_scene(10.0, [oncoming]), constant_speed_plan(10.0))
    assert result.nc == 0.0 and result.pdms == 0.0
    assert result.collision_agent_id == "oncoming" and result.collision_type == "active_front"
    assert result.collision_time_s == pytest.approx(1.8, abs=0.15)  # (40 - 4.5) m closed at 20 m/s


def test_being_rear_ended_is_not_at_fault():
    tailgater = constant_velocity_agent("tailgater", -8.0, 0.0, 0.0, 15.0)
    result = score(straight_road_scene(5.0, [tailgater]), constant_speed_plan(5.0))
    assert result.collided_agent_ids == ["tailgater"]  # the contact happened ...
    assert result.nc == 1.0 and result.collision_agent_id is None  # ... but not by the ego's fault
    assert result.ttc == 1.0


def test_collision_with_a_static_object_scores_half():
    cone = constant_velocity_agent("cone", 20.0, 0.0, 0.0, 0.0, kind="static", length=1.0, width=1.0)
    result = score(straight_road_scene(10.0, [cone]), constant_speed_plan(10.0))
    assert result.nc == 0.5 and result.collision_type == "stopped_track"
    assert result.pdms == pytest.approx(0.5 * (5 * result.ep + 5 * result.ttc + 2 * result.comfort) / 12)


def test_collision_with_a_stopped_vehicle_scores_zero():
    parked = constant_velocity_agent("parked", 20.0, 0.0, 0.0, 0.0)
    assert score(straight_road_scene(10.0, [parked]), constant_speed_plan(10.0)).nc == 0.0


def test_lateral_collision_while_changing_lanes_is_at_fault():
    neighbour = constant_velocity_agent("neighbour", -1.0, 3.5, 0.0, 10.0)
    result = score(straight_road_scene(10.0, [neighbour]), constant_speed_plan(10.0, lateral=3.5))
    assert result.nc == 0.0 and result.collision_type == "active_lateral"


def test_being_side_swiped_inside_the_own_lane_is_not_at_fault():
    cutting_in = constant_velocity_agent("cutting_in", 0.0, 3.0, -0.15, 10.0)
    result = score(straight_road_scene(10.0, [cutting_in]), constant_speed_plan(10.0))
    assert result.collided_agent_ids == ["cutting_in"] and result.nc == 1.0


# --- DAC -------------------------------------------------------------------------------------------------------


def test_a_corner_leaving_the_road_fails_dac():
    result = score(straight_road_scene(10.0), constant_speed_plan(10.0, lateral=-1.5))  # lane 0 is the rightmost
    assert result.dac == 0.0 and result.pdms == 0.0 and result.dac_violation_time_s is not None


def test_a_lane_change_on_the_road_keeps_dac():
    result = score(straight_road_scene(10.0), constant_speed_plan(10.0, lateral=3.5))
    assert result.dac == 1.0 and result.nc == 1.0 and result.comfort == 1.0


# --- Comfort ---------------------------------------------------------------------------------------------------


def test_harsh_braking_fails_comfort():
    result = score(straight_road_scene(15.0), constant_speed_plan(15.0, accel=-7.0))
    assert result.comfort == 0.0
    assert "lon_accel_min" in result.comfort_violations
    assert result.comfort_values["lon_accel_min"] < -4.05


@pytest.mark.parametrize("accel", [0.0, -2.0, 1.0])
def test_gentle_plans_are_comfortable(accel):
    scene = straight_road_scene(10.0)
    scene.ego.ax = accel
    result = score(scene, constant_speed_plan(10.0, accel=accel))
    assert result.comfort == 1.0, result.comfort_values


def test_swerving_fails_comfort_on_yaw():
    plan = constant_speed_plan(5.0)
    plan[:, 1] = 1.0 * np.sin(np.arange(1, 9) * np.pi / 2)  # left-right slalom every 0.5 s
    result = score(straight_road_scene(5.0, num_lanes=3), plan)
    assert result.comfort == 0.0 and {"yaw_rate", "yaw_accel"} & set(result.comfort_violations)


# --- EP --------------------------------------------------------------------------------------------------------


def test_progress_ratio():
    scene = straight_road_scene(10.0)
    result = score_trajectory(scene, constant_speed_plan(10.0), reference_progress=80.0)
    assert result.progress == pytest.approx(40.0, abs=0.3)
    assert result.ep == pytest.approx(result.progress / 80.0)
    faster = score_trajectory(scene, constant_speed_plan(10.0), reference_progress=20.0)
    assert faster.ep == 1.0  # own progress is the larger one


def test_progress_under_five_metres_gives_full_ep():
    scene = straight_road_scene(0.0)
    standing = np.zeros((8, 3))
    assert score_trajectory(scene, standing, reference_progress=4.9).ep == 1.0
    assert score_trajectory(scene, standing, reference_progress=10.0).ep == 0.0


def test_ep_rule_directly():
    assert ego_progress_score(3.0, 1.0, 4.0, 5.0) == 1.0
    assert ego_progress_score(3.0, 0.0, 4.0, 5.0) == 0.0
    assert ego_progress_score(10.0, 1.0, 20.0, 5.0) == 0.5
    assert ego_progress_score(10.0, 0.5, 20.0, 5.0) == 0.5  # own progress is not reweighted in the ratio
    assert ego_progress_score(-3.0, 1.0, 20.0, 5.0) == 0.0


# --- TTC -------------------------------------------------------------------------------------------------------


def test_ttc_with_an_agent_ahead_closing_in():
    slower = constant_velocity_agent("slower", 9.5, 0.0, 0.0, 5.0)
    result = score(straight_road_scene(10.0, [slower]), constant_speed_plan(10.0, accel=-3.0))
    assert result.nc == 1.0 and result.collided_agent_ids == []  # brakes in time ...
    assert result.ttc == 0.0 and result.ttc_agent_id == "slower"  # ... but gets too close


def _ttc_of(agent, ego_y=0.0, multiple_lanes=False):
    """TTC of an ego driving +x at 10 m/s from (0, ego_y) against one agent, with a forced lane situation."""
    scene = straight_road_scene(10.0, [agent])
    times = np.arange(41) * 0.1
    poses = np.column_stack([10.0 * times, np.full(41, ego_y), np.zeros(41)])
    footprint = ego_footprint(poses, scene.ego_length, scene.ego_width)
    areas = ego_areas(scene.map, footprint)
    areas.multiple_lanes[:] = multiple_lanes
    return time_to_collision(footprint, np.full(41, 10.0), areas, agent_geometry([agent], 50), ignore_ids=[])


def test_ttc_counts_agents_ahead_and_ignores_agents_behind():
    ahead = constant_velocity_agent("ahead", 12.0, 0.0, 0.0, 7.0)  # ego projected 0.9 s reaches it
    behind = constant_velocity_agent("behind", -4.6, 0.0, 0.0, 10.0)  # bumper to bumper, same speed
    assert _ttc_of(ahead).score == 0.0
    assert _ttc_of(behind).score == 1.0
    assert _ttc_of(behind, multiple_lanes=True).score == 1.0  # behind stays ignored


def test_ttc_counts_agents_alongside_only_while_spanning_lanes():
    alongside = constant_velocity_agent("alongside", 1.0, 1.85, 0.0, 10.0)  # 5 cm lateral overlap, beside the ego
    assert _ttc_of(alongside).score == 1.0
    assert _ttc_of(alongside, multiple_lanes=True).score == 0.0


def test_ttc_skipped_when_the_ego_stands_still():
    scene = straight_road_scene(0.0, [constant_velocity_agent("ahead", 5.0, 0.0, 0.0, 0.0)])
    result = score(scene, np.zeros((8, 3)))
    assert result.ttc == 1.0 and result.nc == 1.0


# --- ego areas -------------------------------------------------------------------------------------------------


def test_multiple_lanes_and_off_road_flags():
    scene = straight_road_scene()
    poses = np.array([[0.0, 0.0, 0.0], [0.0, 1.75, 0.0], [0.0, -1.5, 0.0], [0.0, 3.5, 0.0]])
    areas = ego_areas(scene.map, ego_footprint(poses, 4.5, 1.9))
    assert areas.multiple_lanes.tolist() == [False, True, False, False]
    assert areas.non_drivable.tolist() == [False, False, True, False]
    assert not areas.in_intersection.any()


def test_intersection_is_where_crossing_lanes_meet():
    east = make_lane("east", shapely.box(-50, -1.75, 50, 1.75), shapely.LineString([(-50, 0), (50, 0)]))
    north = make_lane("north", shapely.box(-1.75, -50, 1.75, 50), shapely.LineString([(0, -50), (0, 50)]))
    road = build_map([east, north])
    poses = np.array([[0.0, 0.0, 0.0], [-20.0, 0.0, 0.0]])
    areas = ego_areas(road, ego_footprint(poses, 4.5, 1.9))
    assert areas.in_intersection.tolist() == [True, False]


def test_scene_context_pads_short_agent_tracks():
    short = constant_velocity_agent("short", 30.0, 0.0, 0.0, 5.0, steps=10)
    context = prepare_scene(straight_road_scene(10.0, [short]))
    assert context.agents.num_steps == 10  # horizon is limited to what the logs hold
    assert context.agents.valid.all()


@pytest.mark.parametrize("agent_x, agent_speed, ego_y, kind, at_fault", [
    (4.0, 5.0, 0.0, "active_front", True),  # the ego's bumper in a slower car ahead
    (-4.0, 12.0, 0.0, "active_rear", False),  # rear-ended
    (4.0, 0.0, 0.0, "stopped_track", True),  # into a stopped car
    (-0.5, 8.0, 1.75, "active_lateral", True),  # sideways while straddling two lanes
    (-0.5, 8.0, 0.0, "active_lateral", False),  # side-swiped inside its own lane
])
def test_a_closed_loop_contact_is_classified_by_the_nc_rule(agent_x, agent_speed, ego_y, kind, at_fault):
    from diffusiondrive_ros.pdm.metrics import classify_contact
    from diffusiondrive_ros.pdm.synthetic import straight_road

    road, _ = straight_road(num_lanes=2)
    lateral = kind == "active_lateral"  # a short car beside the ego, clear of its front bumper
    agent_y, agent_length = ego_y + (1.8 if lateral else 0.0), 3.0 if lateral else 4.5
    got = classify_contact(road, np.array([0.0, ego_y, 0.0]), 8.0, 4.5, 1.9, np.array([agent_x, agent_y, 0.0]),
                           agent_speed, agent_length, 1.9)
    assert got == (kind, at_fault)
