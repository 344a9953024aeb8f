"""The closed-loop (tracked IDM) expert as a training-data source: smooth, comfortable futures and real recoveries."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.pdm.constants import MAX_LON_ACCEL, MIN_LON_ACCEL
from diffusiondrive_ros.sim.expert import perturbation_schedule
from diffusiondrive_ros.sim.tracked_expert import iter_tracked_expert_samples

pytestmark = pytest.mark.sim  # needs MetaDrive: skipped without it (test/conftest.py)
SEED = 3


@pytest.fixture(scope="module")
def samples(tiny_config):
    return list(iter_tracked_expert_samples(SEED, tiny_config, max_samples=12, perturb=True, camera_width=320))


def _speeds(future: np.ndarray) -> np.ndarray:
    path = np.concatenate([np.zeros((1, 2)), future[:, :2]])
    return np.linalg.norm(np.diff(path, axis=0), axis=1) / 0.5


def test_samples_come_every_half_second_with_finite_sensors(samples):
    assert len(samples) == 12
    for s in samples:
        assert s.expert_future.shape == (8, 3) and np.isfinite(s.expert_future).all()
        assert len(s.frame.cameras) == 3 and np.isfinite(s.frame.lidar_points).all()
        assert s.bev_semantic.ndim == 2 and s.scene_id == f"seed-{SEED}"
    times = np.array([s.t for s in samples])
    assert np.all(np.diff(times) >= 0.5 - 1e-9) and np.allclose(times % 0.5, 0.0, atol=1e-9)


def test_futures_are_comfortable_and_continue_the_current_speed(samples):
    """What the expert drove is within the PDM comfort limits, so a planner imitating it scores comfort."""
    for s in samples:
        v = _speeds(s.expert_future)
        accel = np.diff(np.concatenate([[s.frame.velocity[0]], v])) / 0.5
        assert accel.max() <= MAX_LON_ACCEL + 0.3, (s.t, v)
        assert accel.min() >= MIN_LON_ACCEL - 0.3, (s.t, v)


def test_displacements_are_flagged_and_never_inside_a_future(samples):
    schedule = perturbation_schedule(SEED, 10_000)
    assert any(s.perturbed for s in samples) and not all(s.perturbed for s in samples)
    for s in samples:
        step = round(s.t / 0.1)
        assert not any(step < p <= step + 40 for p in schedule), f"t={s.t}: a jump inside the future"
        assert np.all(np.abs(np.diff(s.expert_future[:, 1])) < 2.0)


def test_the_drive_is_deterministic(tiny_config, samples):
    again = next(iter(iter_tracked_expert_samples(SEED, tiny_config, max_samples=1, perturb=True, camera_width=320)))
    np.testing.assert_array_equal(again.expert_future, samples[0].expert_future)


def test_sample_interval_must_be_a_multiple_of_the_planning_period(tiny_config):
    with pytest.raises(ValueError, match="multiple"):
        next(iter(iter_tracked_expert_samples(SEED, tiny_config, sample_interval_s=0.3)))


def test_a_displacement_never_lands_on_an_agent():
    """A sideways jump onto a neighbour would be a collision at once (it emptied 1 scene in 9): mirror or skip it."""
    from diffusiondrive_ros.pdm.scene import EgoState
    from diffusiondrive_ros.sim.closed_loop import _free_displacement
    from diffusiondrive_ros.sim.world import WorldState

    def world(agent_ys):
        n = len(agent_ys)
        return WorldState(
            t=0.0, ego_pose=np.zeros(3), ego_velocity=np.array([5.0, 0.0]), ego_length=4.5, ego_width=2.0,
            ego_height=1.5, agent_ids=[f"a{i}" for i in range(n)], agent_kinds=np.zeros(n, np.int8),
            agent_poses=np.array([[0.0, y, 0.0] for y in agent_ys]).reshape(n, 3),
            agent_velocities=np.zeros((n, 2)), agent_sizes=np.tile([4.5, 2.0, 1.5], (n, 1)),
        )

    ego = EgoState(0.0, 0.0, 0.0, 5.0, 0.0)
    free = _free_displacement(world([]), ego, 1.5, 0.1)
    assert free is not None and free.y == pytest.approx(1.5) and free.heading == pytest.approx(0.1)
    mirrored = _free_displacement(world([3.0]), ego, 1.5, 0.1)  # a car in the left lane
    assert mirrored is not None and mirrored.y == pytest.approx(-1.5) and mirrored.heading == pytest.approx(-0.1)
    assert _free_displacement(world([3.0, -3.0]), ego, 1.5, 0.1) is None  # boxed in: no jump
