"""The planner node's topics: short input/output names and the private topics they map to (remappable).

Camera inputs are ``camera_<name>`` for each of ``contract.CAMERA_NAMES``.
"""

from __future__ import annotations

from ..contract import CAMERA_NAMES

CAMERA_INPUTS = tuple(f"camera_{name}" for name in CAMERA_NAMES)
SENSOR_INPUTS = (*CAMERA_INPUTS, "lidar", "odometry")  # the inputs one plan is synchronised from
# short name (launch argument <name>_topic, bag topic key) -> private topic of the node.
INPUT_TOPICS: dict[str, str] = {
    **{name: f"~/input/{name}" for name in CAMERA_INPUTS},
    "lidar": "~/input/lidar",
    "odometry": "~/input/odometry",
    "command": "~/input/command",
}
OUTPUT_TOPICS: dict[str, str] = {
    "trajectory": "~/output/trajectory",
    "candidates": "~/output/candidates",
    "candidates_raw": "~/output/candidates_raw",
}
DIAGNOSTICS_TOPIC = "/diagnostics"
TOPICS: dict[str, str] = {**INPUT_TOPICS, **OUTPUT_TOPICS}
