"""Postprocessing: validation of network outputs into a PlanResult, and dense pose interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.contract import HORIZON_S, NUM_POSES, POSE_INTERVAL_S
from diffusiondrive_ros.geometry import wrap_angle
from diffusiondrive_ros.runtime.planner import Planner
from diffusiondrive_ros.runtime.postprocess import (
    NonFiniteOutputError,
    interpolate_poses,
    interpolation_times,
    to_plan_result,
)
from diffusiondrive_ros.runtime.types import PlannerInputs, SensorFrame

BATCH, MODES = 2, 20


def fake_outputs(seed: int = 0, aux: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    modes = rng.normal(0.0, 3.0, (BATCH, MODES, NUM_POSES, 3)).astype(np.float32)
    scores = rng.uniform(0.0, 1.0, (BATCH, MODES)).astype(np.float32)
    best = scores.argmax(axis=1)
    outputs = {"trajectory": modes[np.arange(BATCH), best], "modes": modes, "mode_scores": scores}
    if aux:
        outputs["agent_states"] = rng.normal(size=(BATCH, 30, 5)).astype(np.float32)
        outputs["agent_labels"] = rng.normal(size=(BATCH, 30)).astype(np.float32)
        outputs["bev_semantic_map"] = rng.normal(size=(BATCH, 7, 16, 32)).astype(np.float32)
    return outputs


def angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(wrap_angle(np.asarray(a) - np.asarray(b)))


# -- to_plan_result ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_index", [0, 1])
def test_plan_result_fields(batch_index: int):
    outputs = fake_outputs()
    result = to_plan_result(outputs, stamp=12.5, batch_index=batch_index)
    assert result.trajectory.shape == (NUM_POSES, 3) and result.trajectory.dtype == np.float64
    assert result.modes.shape == (MODES, NUM_POSES, 3)
    assert result.mode_scores.shape == (MODES,)
    assert result.best_mode == int(np.argmax(outputs["mode_scores"][batch_index]))
    np.testing.assert_allclose(result.trajectory, result.modes[result.best_mode])
    np.testing.assert_allclose(result.times, POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1))
    assert result.times[-1] == HORIZON_S and result.stamp == 12.5
    assert set(result.aux) == {"agent_states", "agent_labels", "bev_semantic_map"}
    np.testing.assert_array_equal(result.aux["agent_states"], outputs["agent_states"][batch_index])
    np.testing.assert_allclose(result.trajectory[:, :2], outputs["trajectory"][batch_index, :, :2], rtol=1e-6)


def test_plan_result_owns_its_arrays():
    outputs = fake_outputs()
    result = to_plan_result(outputs, stamp=0.0)
    before = result.trajectory.copy()
    for value in outputs.values():
        value[...] = 0.0  # a backend reusing its output buffers
    np.testing.assert_array_equal(result.trajectory, before)
    assert result.aux["agent_labels"].any()


def test_plan_result_without_aux():
    assert to_plan_result(fake_outputs(aux=False), stamp=0.0).aux == {}


def test_headings_wrapped():
    outputs = fake_outputs(aux=False)
    outputs["trajectory"][0, :, 2] = np.linspace(0.0, 4 * np.pi, NUM_POSES)
    outputs["modes"][0, :, :, 2] = -7.0
    result = to_plan_result(outputs, stamp=0.0)
    for headings in (result.trajectory[:, 2], result.modes[..., 2]):
        assert (headings >= -np.pi).all() and (headings < np.pi).all()
    assert angle_error(result.trajectory[:, 2], outputs["trajectory"][0, :, 2]).max() < 1e-6
    np.testing.assert_allclose(result.modes[..., 2], -7.0 + 2 * np.pi, rtol=1e-6)


@pytest.mark.parametrize("name", ["trajectory", "modes", "mode_scores"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(name: str, bad: float):
    outputs = fake_outputs()
    outputs[name][0].flat[3] = bad
    with pytest.raises(NonFiniteOutputError, match=name):
        to_plan_result(outputs, stamp=0.0, batch_index=0)
    assert issubclass(NonFiniteOutputError, ValueError)
    to_plan_result(outputs, stamp=0.0, batch_index=1)  # another batch element is still usable


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("trajectory", (BATCH, NUM_POSES, 2), "trajectory: expected shape"),
        ("trajectory", (BATCH, NUM_POSES + 1, 3), "trajectory: expected shape"),
        ("modes", (BATCH + 1, MODES, NUM_POSES, 3), "modes: expected shape"),
        ("modes", (BATCH, MODES, NUM_POSES), "modes: expected shape"),
        ("mode_scores", (BATCH, MODES - 1), "mode_scores: expected shape"),
        ("agent_states", (BATCH + 1, 30, 5), "auxiliary output 'agent_states'"),
        ("debug", (), "extra output 'debug'"),
    ],
)
def test_shape_errors(name: str, shape: tuple[int, ...], message: str):
    outputs = fake_outputs()
    outputs[name] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=message):
        to_plan_result(outputs, stamp=0.0)


def test_missing_key_and_bad_batch_index():
    outputs = fake_outputs()
    del outputs["mode_scores"]
    with pytest.raises(ValueError, match="lack 'mode_scores'"):
        to_plan_result(outputs, stamp=0.0)
    with pytest.raises(ValueError, match="batch_index 2 out of range"):
        to_plan_result(fake_outputs(), stamp=0.0, batch_index=2)


# -- interpolation ----------------------------------------------------------------------------------------------------
def straight_plan(speed: float = 10.0) -> np.ndarray:
    t = POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1)
    return np.stack([speed * t, 0.1 * t**2, 0.05 * t], axis=-1)


def test_interpolation_hits_the_poses():
    plan = np.random.default_rng(0).normal(0.0, 5.0, (NUM_POSES, 3))
    plan[:, 2] = wrap_angle(plan[:, 2])
    dense = interpolate_poses(plan, dt=0.1)
    times = interpolation_times(0.1)
    assert dense.shape == (41, 3) and times.shape == (41,)
    np.testing.assert_array_equal(dense[0], [0.0, 0.0, 0.0])
    assert times[0] == 0.0 and times[-1] == HORIZON_S
    assert (np.diff(times) > 0).all()
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-12)
    for k in range(1, NUM_POSES + 1):
        row = 5 * k
        assert times[row] == POSE_INTERVAL_S * k  # exactly, no 1.5000000000000002
        np.testing.assert_array_equal(dense[row, :2], plan[k - 1, :2])
        assert angle_error(dense[row, 2], plan[k - 1, 2]) < 1e-12


def test_interpolation_is_linear_between_poses():
    plan = straight_plan()
    dense = interpolate_poses(plan, dt=0.25)
    assert dense.shape == (17, 3)
    np.testing.assert_allclose(dense[1], plan[0] / 2)  # half-way to the first pose
    np.testing.assert_allclose(dense[3], (plan[0] + plan[1]) / 2)


def test_interpolation_without_start_and_coarse_steps():
    plan = straight_plan()
    dense = interpolate_poses(plan, dt=0.1, include_start=False)
    assert dense.shape == (40, 3)
    np.testing.assert_allclose(dense[0, 0], plan[0, 0] / 5)
    np.testing.assert_allclose(interpolate_poses(plan, dt=POSE_INTERVAL_S, include_start=False), plan)
    times = interpolation_times(0.3)  # does not divide the horizon: stops at the last step inside it
    assert times[-1] <= HORIZON_S and len(times) == 14


def test_interpolation_takes_the_short_way_through_pi():
    plan = straight_plan()
    plan[:, 2] = np.linspace(2.8, 4.2, NUM_POSES)  # crosses +pi
    plan[:, 2] = wrap_angle(plan[:, 2])
    dense = interpolate_poses(plan, dt=0.1)
    # From the first pose on, the heading turns 0.2 rad per 0.5 s: 0.04 rad per 0.1 s step, also across pi.
    steps = angle_error(dense[6:, 2], dense[5:-1, 2])
    np.testing.assert_allclose(steps, 0.04, atol=1e-9)
    assert (dense[:, 2] >= -np.pi).all() and (dense[:, 2] < np.pi).all()


@pytest.mark.parametrize(
    ("trajectory", "dt", "error", "message"),
    [
        (np.zeros((NUM_POSES, 2)), 0.1, ValueError, "expected shape"),
        (np.full((NUM_POSES, 3), np.nan), 0.1, NonFiniteOutputError, "not finite"),
        (np.zeros((NUM_POSES, 3)), 0.0, ValueError, "positive"),
        (np.zeros((NUM_POSES, 3)), float("nan"), ValueError, "positive"),
    ],
)
def test_interpolation_validation(trajectory: np.ndarray, dt: float, error: type, message: str):
    with pytest.raises(error, match=message):
        interpolate_poses(trajectory, dt=dt)


# -- through the Planner interface ------------------------------------------------------------------------------------
class EchoPlanner(Planner):
    """A stand-in backend (the network is not needed here): modes fanned out by the status' speed."""

    backend_name = "echo"

    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        batch, modes = inputs.batch_size, noise.shape[1]
        speed = inputs.status[:, 4]
        t = POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1, dtype=np.float32)
        fan = np.zeros((batch, modes, NUM_POSES, 3), np.float32)
        fan[..., 0] = speed[:, None, None] * t
        fan[..., 1] = np.linspace(-1.0, 1.0, modes, dtype=np.float32)[None, :, None] * t
        scores = np.tile(np.linspace(0.0, 1.0, modes, dtype=np.float32), (batch, 1))
        return {"trajectory": fan[:, -1], "modes": fan, "mode_scores": scores}


def test_planner_round_trip(tiny_config):
    cfg = tiny_config
    rng = np.random.default_rng(0)
    frame = SensorFrame(
        cameras=tuple(rng.integers(0, 256, (540, 960, 3), dtype=np.uint8) for _ in range(3)),
        lidar_points=rng.normal(0.0, 10.0, (1000, 3)).astype(np.float32),
        velocity=(6.0, 0.0),
        stamp=3.0,
    )
    result = EchoPlanner(cfg).plan(frame)
    assert result.best_mode == cfg.trajectory_head.num_anchors - 1 and result.stamp == 3.0
    np.testing.assert_allclose(result.trajectory[-1, :2], [6.0 * HORIZON_S, HORIZON_S])
    assert set(result.latency_ms) == {"preprocess", "infer", "postprocess", "total"}
    assert interpolate_poses(result.trajectory).shape == (41, 3)
