"""MetaDrive scenes and the sensors made from them: asset pull disabled, map adapter, LiDAR, cameras, ego command."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from diffusiondrive_ros.contract import DRIVING_COMMANDS
from diffusiondrive_ros.sim import metadrive_env
from diffusiondrive_ros.sim.map_adapter import read_road_map, route_centerline, to_map_geometry
from diffusiondrive_ros.sim.sensors.camera import CameraRenderer, CameraRig, clip_near
from diffusiondrive_ros.sim.sensors.ego import driving_command
from diffusiondrive_ros.sim.sensors.lidar import RayLidarSpec, cast_lidar
from diffusiondrive_ros.sim.world import read_world

pytestmark = pytest.mark.sim  # needs MetaDrive: skipped without it (test/conftest.py)
SEED = metadrive_env.BENCHMARK_SEED_START + 7


@pytest.fixture(scope="module")
def straight_env():
    """A straight road, no traffic, the ego placed by us; one vehicle spawned 10 m ahead of the ego."""
    env = metadrive_env.make_env(SEED, blocks="SS", traffic_density=0.0, ego_control="external")
    env.reset(seed=SEED)
    from metadrive.component.vehicle.vehicle_type import DefaultVehicle

    x, y = (float(v) for v in env.agent.position[:2])
    heading = float(env.agent.heading_theta)
    ahead = (x + 10.0 * np.cos(heading), y + 10.0 * np.sin(heading))
    car = env.engine.spawn_object(DefaultVehicle, vehicle_config={}, position=ahead, heading=heading)
    for _ in range(3):
        env.step([0.0, 0.0])
        metadrive_env.place_ego(env, x, y, heading)
        car.set_position(ahead)
        car.set_heading_theta(heading)
    env.step([0.0, 0.0])
    metadrive_env.place_ego(env, x, y, heading)
    car.set_position(ahead)
    car.set_heading_theta(heading)
    yield env
    env.close()


def test_asset_pull_is_disabled():
    from metadrive.engine.base_engine import BaseEngine

    metadrive_env.disable_asset_pull()
    assert BaseEngine.try_pull_asset is metadrive_env._no_asset_pull or \
        BaseEngine.try_pull_asset.__name__ == "_no_asset_pull"


def test_seed_split_is_disjoint():
    assert metadrive_env.split_of_seed(0) == "train"
    assert metadrive_env.split_of_seed(metadrive_env.TRAINING_SEEDS.stop - 1) == "train"
    assert metadrive_env.split_of_seed(metadrive_env.BENCHMARK_SEED_START) == "benchmark"
    assert metadrive_env.TRAINING_SEEDS.stop <= metadrive_env.BENCHMARK_SEED_START
    with pytest.raises(ValueError, match="neither"):
        metadrive_env.split_of_seed(metadrive_env.TRAINING_SEEDS.stop)
    with pytest.raises(ValueError, match="ego_control"):
        metadrive_env.make_env(0, ego_control="autopilot")


def test_scene_resets_and_steps(straight_env):
    world = read_world(straight_env, 0.0)
    assert np.isfinite(world.ego_pose).all()
    assert world.num_agents == 1 and world.agent_sizes[0, 0] > 3.0


def test_map_adapter_gives_valid_polygons_and_route(straight_env):
    road = read_road_map(straight_env)
    geometry = to_map_geometry(road)
    assert geometry.lanes and all(lane.polygon.is_valid and lane.polygon.area > 0 for lane in geometry.lanes)
    assert geometry.drivable_area.is_valid and geometry.drivable_area.area > 100.0
    route = route_centerline(straight_env)
    assert isinstance(route, shapely.LineString) and route.length > 50.0
    ego = read_world(straight_env, 0.0).ego_pose
    assert route.distance(shapely.Point(*ego[:2])) < 2.0
    assert geometry.contains_xy(np.array(ego[:2]))


def test_lidar_sees_ground_and_the_car_ahead(straight_env):
    world = read_world(straight_env, 0.0)
    points = cast_lidar(straight_env, world, RayLidarSpec())
    assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 3
    ground = points[points[:, 2] < 0.05]
    assert len(ground) > 1000
    high = points[points[:, 2] > 0.2]
    on_car = high[(np.abs(high[:, 1]) < 1.2) & (high[:, 0] > 5.0) & (high[:, 0] < 12.0)]
    assert len(on_car) >= 5
    # The car's rear face is at 10 m - half its length (~2.3 m): points cluster around x ~ 7.7 m.
    assert 6.5 < float(np.median(on_car[:, 0])) < 9.0
    assert not len(high[(np.abs(high[:, 0]) < 2.0) & (np.abs(high[:, 1]) < 1.0)]), "hits on the ego's own body"


def test_cameras_shape_dtype_determinism_and_road_below_horizon(straight_env):
    road = read_road_map(straight_env)
    world = read_world(straight_env, 0.0)
    rig = CameraRig(width=320, height=180)
    renderer = CameraRenderer(road, rig)
    first = renderer.render(world)
    second = CameraRenderer(road, rig).render(world)
    assert len(first) == 3
    for a, b in zip(first, second):
        assert a.shape == (180, 320, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    front = first[1].astype(int)
    lower = front[100:, 120:200]
    greyish = (np.abs(lower[..., 0] - lower[..., 2]) < 12) & (lower.mean(-1) > 60) & (lower.mean(-1) < 110)
    assert greyish.mean() > 0.3, "expected road surface in the lower half of the front camera"
    upper = front[:60]
    assert (upper[..., 2] > upper[..., 0]).mean() > 0.9, "expected sky in the upper part"


def test_clip_near_keeps_front_part_only():
    square = np.array([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 3.0], [-1.0, 0.0, 3.0]])
    clipped = clip_near(square, 0.5)
    assert (clipped[:, 2] >= 0.5 - 1e-9).all() and len(clipped) == 4
    assert len(clip_near(square - [0, 0, 10], 0.5)) == 0


def test_command_straight_on_straight_road_and_turns():
    straight = shapely.LineString([(0, 0), (200, 0)])
    assert DRIVING_COMMANDS[driving_command(straight, np.array([10.0, 0.0, 0.0]))] == "straight"
    arc = np.linspace(0, np.pi / 2, 50)
    left_turn = shapely.LineString([(0, 0), (25, 0)] + [(25 + 20 * np.sin(a), 20 - 20 * np.cos(a)) for a in arc][1:])
    assert DRIVING_COMMANDS[driving_command(left_turn, np.array([5.0, 0.0, 0.0]))] == "left"
    right_turn = shapely.LineString([(x, -y) for x, y in left_turn.coords])
    assert DRIVING_COMMANDS[driving_command(right_turn, np.array([5.0, 0.0, 0.0]))] == "right"
    assert DRIVING_COMMANDS[driving_command(straight, np.array([10.0, 30.0, 0.0]))] == "unknown"
