"""A deterministic Planner for the ROS tests (loaded by the node as backend ``test_stub_planner:StubPlanner``).

It runs the real preprocess and postprocess around a numpy "network" whose output depends on the status vector, so
the node's plumbing is tested without the model. Command ``left`` makes it emit NaNs (the postprocess then raises
NonFiniteOutputError), which lets a test drive the non-finite path over ROS.
"""

from __future__ import annotations

import time

import numpy as np

from diffusiondrive_ros.contract import DRIVING_COMMANDS, NUM_POSES, POSE_DIM, POSE_INTERVAL_S
from diffusiondrive_ros.runtime.planner import Planner
from diffusiondrive_ros.runtime.postprocess import NonFiniteOutputError
from diffusiondrive_ros.runtime.types import PlannerInputs, SensorFrame

NAN_COMMAND = DRIVING_COMMANDS.index("left")


class StubPlanner(Planner):
    backend_name = "stub"

    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        batch, modes = inputs.batch_size, noise.shape[1]
        speed = np.maximum(inputs.status[:, len(DRIVING_COMMANDS)], 0.0)  # vx
        t = POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1)
        lateral = np.linspace(-1.0, 1.0, modes)
        out = np.zeros((batch, modes, NUM_POSES, POSE_DIM), np.float32)
        out[..., 0] = (speed[:, None, None] + 1.0) * t  # forward
        out[..., 1] = lateral[None, :, None] * t / t[-1]
        out[..., 2] = np.arctan2(lateral, 4.0)[None, :, None]
        scores = np.tile(1.0 - np.abs(lateral), (batch, 1)).astype(np.float32)
        if (inputs.status[:, NAN_COMMAND] > 0.5).any():
            out[:] = np.nan
        best = scores.argmax(axis=1)
        return {"trajectory": out[np.arange(batch), best], "modes": out, "mode_scores": scores}


def _frame(command: int) -> SensorFrame:
    cameras = tuple(np.zeros((270, 480, 3), np.uint8) for _ in range(3))
    return SensorFrame(cameras=cameras, lidar_points=np.array([[5.0, 0.0, 1.0]], np.float32), velocity=(2.0, 0.0),
                       command=command)


def test_stub_plans_finite_and_deterministic(tiny_config):
    planner = StubPlanner(tiny_config)
    first, second = planner.plan(_frame(1)), planner.plan(_frame(1))
    assert first.trajectory.shape == (NUM_POSES, POSE_DIM)
    assert np.isfinite(first.modes).all()
    np.testing.assert_array_equal(first.trajectory, second.trajectory)
    assert first.trajectory[-1, 0] > 10.0  # (2 m/s + 1) * 4 s


def test_stub_left_command_is_non_finite(tiny_config):
    planner = StubPlanner(tiny_config)
    try:
        planner.plan(_frame(NAN_COMMAND))
    except NonFiniteOutputError:
        return
    raise AssertionError("expected NonFiniteOutputError")


class OptionsStubPlanner(StubPlanner):
    """A custom backend that takes a model path and backend options (``test_stub_planner:OptionsStubPlanner``)."""

    def __init__(self, config, seed: int = 0, model_path: str | None = None, gain: float = 1.0) -> None:
        super().__init__(config, seed=seed)
        self.model_path, self.gain = model_path, gain


class SlowStubPlanner(StubPlanner):
    """A custom backend whose construction (an engine build) and plans (warm-up) take long, for the SIGTERM tests
    (``test_stub_planner:SlowStubPlanner`` with ``backend_options: {load_s: ..., plan_s: ...}``)."""

    def __init__(self, config, seed: int = 0, load_s: float = 0.0, plan_s: float = 0.0) -> None:
        super().__init__(config, seed=seed)
        self.plan_s = plan_s
        print(f"SlowStubPlanner: loading for {load_s} s", flush=True)
        time.sleep(load_s)

    def infer(self, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(self.plan_s)
        return super().infer(inputs, noise)
