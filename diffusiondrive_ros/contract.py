"""The planner's I/O contract: constants shared by the model, preprocessing, the simulator and the ROS node.

One source of truth: nothing else hard-codes these numbers.
"""

from __future__ import annotations

from numbers import Integral

# Trajectory: 8 future poses (x [m], y [m], heading [rad]) at 0.5 s steps in the ego frame (x forward, y left).
NUM_POSES = 8
POSE_INTERVAL_S = 0.5
POSE_DIM = 3
HORIZON_S = NUM_POSES * POSE_INTERVAL_S


def check_scored_duration(duration_s: float) -> float:
    """A closed-loop drive length that can be scored: each plan is scored on the HORIZON_S seconds after it."""
    if not duration_s >= HORIZON_S:
        raise ValueError(f"a scored drive must last at least the {HORIZON_S:g} s PDM horizon (a plan is scored on "
                         f"the {HORIZON_S:g} s that follow it), got {duration_s}")
    return float(duration_s)

# The three cameras, in the order of SensorFrame.cameras and of the stitched camera image (left-front, front,
# right-front). Everything that names a camera (ROS inputs ``camera_<name>``, bags, preprocessing) uses these.
CAMERA_NAMES = ("left", "front", "right")

# Status vector: driving command one-hot (4) + ego velocity (vx, vy) + ego acceleration (ax, ay), ego frame.
DRIVING_COMMANDS = ("left", "straight", "right", "unknown")
STATUS_DIM = len(DRIVING_COMMANDS) + 4


def command_index(command: int | str) -> int:
    """Index into DRIVING_COMMANDS of a command given by index or by name (bools and floats are rejected)."""
    if isinstance(command, str):
        if command not in DRIVING_COMMANDS:
            raise ValueError(f"unknown driving command {command!r}; expected one of {DRIVING_COMMANDS}")
        return DRIVING_COMMANDS.index(command)
    if isinstance(command, bool) or not isinstance(command, Integral):
        raise ValueError(f"driving command must be an int index or a name, got {command!r}")
    if not 0 <= int(command) < len(DRIVING_COMMANDS):
        raise ValueError(f"driving command index {command} out of range 0..{len(DRIVING_COMMANDS) - 1}")
    return int(command)

# Auxiliary outputs.
NUM_AGENTS = 30  # agent query slots
AGENT_STATE_DIM = 5  # x, y, heading, length, width
NUM_BEV_CLASSES = 7

# Names of the planner's tensors, used by the model's forward, the ONNX graph and every backend.
INPUT_NAMES = ("camera", "lidar", "status", "noise")
OUTPUT_NAMES = ("trajectory", "modes", "mode_scores")
AUX_OUTPUT_NAMES = ("agent_states", "agent_labels", "bev_semantic_map")
