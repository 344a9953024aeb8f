"""Scene types, the scene file format and the plan interpolation of the PDM scorer."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusiondrive_ros.contract import NUM_POSES
from diffusiondrive_ros.pdm import (
    NUM_STATES,
    AgentTrack,
    SceneFormatError,
    interpolate_trajectory,
    load_scene,
    make_lane,
    save_scene,
    score_trajectory,
)
from diffusiondrive_ros.pdm.synthetic import constant_speed_plan, constant_velocity_agent, straight_road_scene
from diffusiondrive_ros.pdm.trajectory import sample_plan


def test_make_lane_repairs_an_invalid_polygon():
    bowtie = shapely.Polygon([(0, 0), (10, 2), (10, 0), (0, 2)])  # self-intersecting
    assert not bowtie.is_valid
    lane = make_lane("l", bowtie, shapely.LineString([(0, 1), (10, 1)]), 10.0)
    assert lane.polygon.is_valid and lane.polygon.area > 0


def test_make_lane_rejects_bad_input():
    box = shapely.box(0, 0, 10, 3)
    with pytest.raises(ValueError, match="centerline"):
        make_lane("l", box, shapely.LineString())
    with pytest.raises(ValueError, match="speed_limit"):
        make_lane("l", box, shapely.LineString([(0, 1), (10, 1)]), -1.0)


def test_lanes_at_and_drivable_area_of_a_two_lane_road():
    scene = straight_road_scene()
    ids = sorted(lane.lane_id for lane in scene.map.lanes_at((10.0, 0.0)))
    assert ids == ["lane_0"]
    assert sorted(lane.lane_id for lane in scene.map.lanes_at((10.0, 1.75))) == ["lane_0", "lane_1"]
    inside = scene.map.contains_xy(np.array([[0.0, 0.0], [0.0, 5.0], [0.0, -1.8], [0.0, 5.3]]))
    assert inside.tolist() == [True, True, False, False]
    assert scene.map.speed_limit_at(np.array([0.0, 0.0])) == 15.0


def test_agent_track_validates_shapes_and_kind():
    with pytest.raises(ValueError, match="kind"):
        AgentTrack("a", "truck", 4.0, 2.0, np.zeros((3, 3)), np.zeros((3, 2)), np.ones(3, bool))
    with pytest.raises(ValueError, match="expected poses"):
        AgentTrack("a", "vehicle", 4.0, 2.0, np.zeros((3, 3)), np.zeros((2, 2)), np.ones(3, bool))


def test_interpolate_trajectory_prepends_the_ego_and_hits_the_knots():
    plan = constant_speed_plan(10.0, lateral=2.0)
    ego_pose = np.array([5.0, -3.0, 0.7])
    world = interpolate_trajectory(plan, ego_pose)
    assert world.shape == (NUM_STATES, 3)
    np.testing.assert_allclose(world[0], ego_pose)
    c, s = np.cos(0.7), np.sin(0.7)
    first = np.array([5.0 + c * plan[0, 0] - s * plan[0, 1], -3.0 + s * plan[0, 0] + c * plan[0, 1]])
    np.testing.assert_allclose(world[5, :2], first)
    np.testing.assert_allclose(world[-1, 2], (plan[-1, 2] + 0.7 + np.pi) % (2 * np.pi) - np.pi)


def test_interpolate_trajectory_unwraps_headings_across_pi():
    plan = np.zeros((NUM_POSES, 3))
    plan[:, 0] = np.arange(1, NUM_POSES + 1)
    plan[:, 2] = np.linspace(0.2, 0.4, NUM_POSES)
    world = interpolate_trajectory(plan, np.array([0.0, 0.0, np.pi - 0.1]))
    step = np.diff(np.unwrap(world[:, 2]))
    assert np.all(np.abs(step) < 0.1)  # no jump of 2 pi between the knots


@pytest.mark.parametrize("bad", [np.zeros((7, 3)), np.zeros((8, 2)), np.full((8, 3), np.nan)])
def test_interpolate_trajectory_rejects_bad_plans(bad):
    with pytest.raises(ValueError):
        interpolate_trajectory(bad, np.zeros(3))


def test_save_load_round_trip(tmp_path):
    short = constant_velocity_agent("short", 30.0, 3.5, 0.0, 8.0, steps=45)
    cone = constant_velocity_agent("cone", 60.0, 0.0, 0.0, 0.0, kind="static", length=0.5, width=0.5)
    cone.valid[::3] = False
    scene = straight_road_scene(9.0, [short, cone], scene_id="roundtrip")
    scene.ego.ax, scene.ego.steering = -0.5, 0.01
    path = save_scene(scene, tmp_path / "scene")
    assert path.suffix == ".npz"
    loaded = load_scene(path)
    assert loaded.scene_id == "roundtrip" and loaded.ego == scene.ego
    assert loaded.map.drivable_area.equals_exact(scene.map.drivable_area, 0.0)
    assert loaded.route.equals_exact(scene.route, 0.0)
    assert [lane.lane_id for lane in loaded.map.lanes] == ["lane_0", "lane_1"]
    assert loaded.map.lanes[0].speed_limit == 15.0
    for a, b in zip(scene.agents, loaded.agents):
        assert (a.agent_id, a.kind, a.length, a.width) == (b.agent_id, b.kind, b.length, b.width)
        np.testing.assert_array_equal(a.poses, b.poses)
        np.testing.assert_array_equal(a.velocities, b.velocities)
        np.testing.assert_array_equal(a.valid, b.valid)
    plan = constant_speed_plan(9.0)
    assert score_trajectory(loaded, plan, 30.0).pdms == score_trajectory(scene, plan, 30.0).pdms


def test_load_scene_rejects_foreign_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array('{"format": "something-else", "version": 1}'))
    with pytest.raises(SceneFormatError, match="format"):
        load_scene(other)
    newer = tmp_path / "newer.npz"
    np.savez(newer, meta=np.array('{"format": "diffusiondrive-pdm-scene", "version": 99}'))
    with pytest.raises(SceneFormatError, match="newer"):
        load_scene(newer)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    speed=st.floats(0.0, 30.0),
    lateral=st.floats(-4.0, 4.0),
    pose=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(-np.pi, np.pi)),
)
def test_sample_plan_inverts_interpolate_trajectory(speed, lateral, pose):
    plan = constant_speed_plan(speed, lateral=lateral)
    ego_pose = np.array(pose)
    back = sample_plan(interpolate_trajectory(plan, ego_pose), ego_pose)
    np.testing.assert_allclose(back[:, :2], plan[:, :2], atol=1e-6)
    np.testing.assert_allclose(np.angle(np.exp(1j * (back[:, 2] - plan[:, 2]))), 0.0, atol=1e-9)
