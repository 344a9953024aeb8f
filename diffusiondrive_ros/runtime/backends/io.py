"""Input checks shared by every backend: the tensors a planner network takes, by name, with the config's shapes."""

from __future__ import annotations

import numpy as np

from ...contract import INPUT_NAMES, NUM_POSES, STATUS_DIM
from ...model.config import ModelConfig
from ..types import PlannerInputs


def expected_input_shapes(config: ModelConfig, batch_size: int = 1) -> dict[str, tuple[int, ...]]:
    """The shape of every model input for ``config`` (the single source for shape checks)."""
    size = config.lidar.size
    return {
        "camera": (batch_size, 3, config.camera.height, config.camera.width),
        "lidar": (batch_size, 1, size, size),
        "status": (batch_size, STATUS_DIM),
        "noise": (batch_size, config.trajectory_head.num_anchors, NUM_POSES, 2),
    }


def planner_input_arrays(inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
    """PlannerInputs + start noise as the name -> array mapping of ``contract.INPUT_NAMES``."""
    return {"camera": inputs.camera, "lidar": inputs.lidar, "status": inputs.status, "noise": noise}


def check_input_arrays(arrays: dict[str, np.ndarray], config: ModelConfig) -> dict[str, np.ndarray]:
    """Validate shapes against the config and return C-contiguous float32 arrays; ValueError says what is wrong."""
    missing = [name for name in INPUT_NAMES if name not in arrays]
    if missing:
        raise ValueError(f"missing model input(s) {missing}; expected {list(INPUT_NAMES)}")
    camera = np.asarray(arrays["camera"])
    if camera.ndim != 4 or camera.shape[0] < 1:
        raise ValueError(f"input 'camera' must be (B,3,H,W) with B >= 1, got shape {camera.shape}")
    expected = expected_input_shapes(config, int(camera.shape[0]))
    out = {}
    for name in INPUT_NAMES:
        arr = np.asarray(arrays[name])
        if tuple(arr.shape) != expected[name]:
            raise ValueError(
                f"input {name!r} has shape {tuple(arr.shape)}, expected {expected[name]} for config {config.name!r}"
            )
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"input {name!r} must be numeric, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"input {name!r} contains NaN or inf")
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
    return out
