"""Expert samples for training, closed-loop drives with baseline planners, and the replayed benchmark scenes."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.contract import NUM_POSES
from diffusiondrive_ros.sim.closed_loop import drive
from diffusiondrive_ros.sim.expert import iter_expert_samples
from diffusiondrive_ros.sim.metadrive_env import BENCHMARK_SEED_START
from diffusiondrive_ros.sim.planners import IDMRoutePlanner, constant_velocity_planner
from diffusiondrive_ros.sim.world import AGENT_KINDS

pytestmark = pytest.mark.sim  # needs MetaDrive: skipped without it (test/conftest.py)


@pytest.fixture(scope="module")
def samples(tiny_config):
    return list(iter_expert_samples(3, tiny_config, max_samples=10, camera_width=320))


def test_expert_samples_are_finite_and_move_forward(samples, tiny_config):
    assert len(samples) == 10
    times = [s.t for s in samples]
    np.testing.assert_allclose(np.diff(times), 0.5)
    for s in samples:
        assert s.expert_future.shape == (NUM_POSES, 3) and np.isfinite(s.expert_future).all()
        assert s.frame.cameras[0].shape == (180, 320, 3)
        assert s.frame.lidar_points.dtype == np.float32 and len(s.frame.lidar_points) > 1000
        assert s.bev_semantic.shape == tuple(tiny_config.aux_heads.bev_semantic_size) and s.bev_semantic.max() < 7
        assert s.agent_boxes.shape == (len(s.agent_kinds), 5) and s.agent_kinds.dtype == np.int8
        assert set(s.agent_kinds.tolist()) <= set(range(len(AGENT_KINDS)))
    moving = samples[-1]
    assert moving.expert_future[-1, 0] > 10.0 and np.all(np.diff(moving.expert_future[:, 0]) > 0)
    assert (moving.bev_semantic == 1).mean() > 0.05, "road in the BEV raster"


def test_expert_samples_are_deterministic(samples, tiny_config):
    again = next(iter(iter_expert_samples(3, tiny_config, max_samples=1, camera_width=320)))
    np.testing.assert_array_equal(again.expert_future, samples[0].expert_future)
    np.testing.assert_array_equal(again.frame.lidar_points, samples[0].frame.lidar_points)
    np.testing.assert_array_equal(again.frame.cameras[1], samples[0].frame.cameras[1])


def test_bad_sample_interval_is_rejected(tiny_config):
    with pytest.raises(ValueError, match="multiple"):
        next(iter(iter_expert_samples(3, tiny_config, sample_interval_s=0.25)))


@pytest.mark.parametrize("planner", ["expert", "constant_velocity"])
def test_closed_loop_drive_runs(planner, tiny_config):
    fn = IDMRoutePlanner() if planner == "expert" else constant_velocity_planner
    log = drive(BENCHMARK_SEED_START + 3, fn, 6.0, config=tiny_config, initial_speed=6.0, camera_width=320)
    assert len(log.times) == 61 and np.isfinite(log.ego_poses).all()
    assert log.plans.shape == (12, NUM_POSES, 3)
    assert log.progress_m > 20.0
    assert not log.collided and not log.off_road
    assert len(log.scoring_scenes) == 5  # plans at 0.0 .. 2.0 s have a full 4 s log after them
    scene = log.scoring_scenes[0]
    assert scene.route.length > 50 and all(a.num_steps >= 41 for a in scene.agents)


def test_closed_loop_rejects_bad_plans(tiny_config):
    with pytest.raises(ValueError, match="trajectory"):
        drive(BENCHMARK_SEED_START + 3, lambda frame: np.zeros((4, 3)), 1.0, config=tiny_config, with_sensors=False)


def test_benchmark_scene_replays_non_reactive(tiny_config, benchmark_dir):
    if not (benchmark_dir / "dataset_summary.pkl").is_file():
        pytest.skip("benchmark scenes not exported")
    from diffusiondrive_ros.evaluation.scene_sets import load_scene_set as load_benchmark

    scenes = load_benchmark(benchmark_dir)
    assert len(scenes) >= 1
    log = drive(scenes[0], IDMRoutePlanner(), 5.0, config=tiny_config, camera_width=320)
    assert len(log.times) == 51 and log.route_length_m > 20.0
    assert log.progress_m > 5.0
    assert len(log.scoring_scenes) >= 1
