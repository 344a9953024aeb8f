"""What training data needs from the simulator: traffic from t = 0, LiDAR returns from vehicles, recoveries."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.runtime.preprocess import lidar_feature
from diffusiondrive_ros.sim.expert import (
    PERTURB_LATERAL_M,
    iter_expert_samples,
    perturbation_schedule,
)
from diffusiondrive_ros.sim.metadrive_env import make_env

pytestmark = pytest.mark.sim  # needs MetaDrive: skipped without it (test/conftest.py)


def test_early_samples_have_traffic_and_lidar_returns_above_the_split(tiny_config):
    """Seeds 0 and 2 used to have no agent in their first seconds and a ground-only LiDAR histogram."""
    for seed in (0, 2):
        samples = list(iter_expert_samples(seed, tiny_config, sample_interval_s=1.0, max_samples=3, camera_width=480))
        for sample in samples:
            assert len(sample.agent_boxes) >= 1, f"seed {seed} t {sample.t}: no agent in range"
            assert np.count_nonzero(lidar_feature(sample.frame.lidar_points, tiny_config.lidar)) > 0


def test_perturbation_schedule_is_seeded_and_bounded():
    a, b = perturbation_schedule(5, 600), perturbation_schedule(5, 600)
    assert a == b and a != perturbation_schedule(6, 600)
    lateral = np.array([v[0] for v in a.values()])
    assert len(a) == 6 and np.all(np.abs(lateral) >= PERTURB_LATERAL_M[0] - 1e-9)
    assert np.all(np.abs(lateral) <= PERTURB_LATERAL_M[1] + 1e-9)


def test_perturbed_samples_recover_with_the_experts_real_future(tiny_config):
    samples = list(iter_expert_samples(3, tiny_config, max_samples=10, perturb=True, camera_width=480))
    schedule = perturbation_schedule(3, 1200)
    first_jump = min(schedule) * 0.1
    assert len(samples) == 10 and any(s.perturbed for s in samples) and not all(s.perturbed for s in samples)
    for s in samples:
        future = s.expert_future
        assert np.isfinite(future).all()
        # No displacement inside a future: consecutive poses 0.5 s apart stay physically plausible.
        steps = np.diff(np.concatenate([np.zeros((1, 3)), future]), axis=0)
        assert np.all(np.abs(steps[:, 1]) < 2.0) and np.all(np.abs(steps[:, 0]) < 12.0)
        if not s.perturbed:
            assert s.t < first_jump - 4.0 + 1e-6 or s.t >= first_jump + 4.0 - 1e-6
    at_jump = next(s for s in samples if abs(s.t - first_jump) < 1e-6)
    assert at_jump.perturbed
    calm = next(s for s in iter_expert_samples(3, tiny_config, max_samples=3, camera_width=480)
                if abs(s.t - first_jump) < 1e-6)
    assert np.abs(at_jump.expert_future[:, 1] - calm.expert_future[:, 1]).max() > 0.3, "a different, recovering path"


def test_traffic_mode_is_checked():
    with pytest.raises(ValueError, match="traffic_mode"):
        make_env(3, traffic_mode="nonsense")
