"""On-policy data: the shadow expert's labels, and DAgger samples of a real planner's drives."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.contract import NUM_POSES
from diffusiondrive_ros.runtime.model_dir import model_fingerprint, shipped_model_dir
from diffusiondrive_ros.sim.expert import future_in_ego
from diffusiondrive_ros.sim.metadrive_env import SIM_DT_S

pytestmark = pytest.mark.sim  # needs MetaDrive: skipped without it (test/conftest.py)


def test_the_shadow_expert_reproduces_the_experts_own_drive(tiny_config):
    """From states the expert reached itself, its shadow rollout is exactly the path it drove."""
    from diffusiondrive_ros.sim.closed_loop import drive
    from diffusiondrive_ros.sim.dagger import shadow_expert_future
    from diffusiondrive_ros.sim.planners import IDMRoutePlanner
    from diffusiondrive_ros.sim.scenes import scene_of_seed

    spec = scene_of_seed(4, "diverse")
    log = drive(spec, IDMRoutePlanner(target_speed=spec.cruise_speed), 9.0, config=tiny_config, with_sensors=False)
    cruise = max(spec.cruise_speed, float(log.ego_speeds[0]))
    for i in (0, 4, 9):
        step = int(round(log.plan_times[i] / SIM_DT_S))
        shadow = shadow_expert_future(log, i, IDMRoutePlanner(target_speed=cruise, match_initial_speed=False))
        np.testing.assert_allclose(shadow, future_in_ego(log.ego_poses[step:step + 41]), atol=1e-9)
    assert shadow_expert_future(log, len(log.plan_times) - 1, IDMRoutePlanner()) is None  # no 4 s of log left


@pytest.mark.slow
def test_dagger_samples_label_the_planners_own_states():
    from diffusiondrive_ros.model.config import load_config
    from diffusiondrive_ros.sim.dagger import MAX_ROUTE_DEVIATION_M, iter_dagger_samples

    model = shipped_model_dir("tiny")
    config = load_config(model / "model.yaml")  # the data set is written for the model's own inputs
    samples = list(iter_dagger_samples(5000, config, max_samples=4, model=str(model), camera_width=480,
                                       model_sha256=model_fingerprint(model)))
    assert 1 <= len(samples) <= 4
    for sample in samples:
        assert sample.expert_future.shape == (NUM_POSES, 3) and np.isfinite(sample.expert_future).all()
        assert sample.scene_id == "seed-5000" and not sample.perturbed
        assert sample.expert_future[-1, 0] > 0  # the expert drives on from wherever the planner was
        assert np.all(np.abs(sample.expert_future[:, 1]) < 2 * MAX_ROUTE_DEVIATION_M + 40)
    with pytest.raises(ValueError, match="changed"):
        next(iter_dagger_samples(5000, config, max_samples=1, model=str(model), model_sha256="0" * 64))
    with pytest.raises(ValueError, match="other inputs"):
        next(iter_dagger_samples(5000, load_config("navsim"), max_samples=1, model=str(model)))
