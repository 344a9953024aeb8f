"""How one planner node process is started (executable, parameter files, overrides, remaps, environment),
described once for launch/planner.launch.py, the bag tools and the tests.

Pure Python (no rclpy, no launch) so that both the launch file and test processes can import it anywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..resources import find_resource
from .params import NODE_NAME
from .topics import TOPICS

MODULE = "diffusiondrive_ros.nodes.planner_node"
EXECUTABLE = "planner_node"  # lib/diffusiondrive_ros/planner_node for `ros2 run` / launch_ros
PARAMS_FILE_NAME = "planner.yaml"
FASTDDS_PROFILE_NAME = "fastdds.xml"
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"



def config_file(name: str) -> Path:
    """config/<name> of the source tree, else of the installed share folder(s)."""
    return find_resource("config", name)


def default_params_file() -> Path:
    """config/planner.yaml of the source tree, else of the installed share folder(s)."""
    return config_file(PARAMS_FILE_NAME)


def node_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables the node process needs on top of ``environ`` (default: this process's).

    Fast DDS's default 512 KiB shared-memory segment drops full-size sensor messages between processes, so the
    node gets config/fastdds.xml as its default profile, unless the environment already names a profile.
    """
    environ = os.environ if environ is None else environ
    if environ.get(FASTDDS_PROFILE_VARIABLE):
        return {}
    return {FASTDDS_PROFILE_VARIABLE: str(config_file(FASTDDS_PROFILE_NAME))}


def _format_value(value: Any) -> str:
    """A ``-p name:=value`` value as the ROS argument parser reads it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # quote so that numbers-looking strings stay strings; empty strings need quotes too
        return "'" + value.replace("'", "''") + "'"
    return str(value)


@dataclass
class NodeLaunch:
    """Everything that decides how one planner node is started."""

    params_files: Sequence[str | os.PathLike] = field(default_factory=lambda: [default_params_file()])
    overrides: Mapping[str, Any] = field(default_factory=dict)  # parameter name -> value (after the files)
    remaps: Mapping[str, str] = field(default_factory=dict)  # short name in TOPICS -> topic it is remapped to
    namespace: str = ""
    node_name: str = NODE_NAME
    log_level: str = ""

    def remap_rules(self) -> list[tuple[str, str]]:
        unknown = sorted(set(self.remaps) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topic name(s) {unknown}; remappable: {sorted(TOPICS)}")
        return [(TOPICS[name], target) for name, target in self.remaps.items() if target]

    def ros_arguments(self) -> list[str]:
        """The ``--ros-args ...`` part of the command line."""
        args = ["--ros-args"]
        if self.node_name != NODE_NAME:
            args += ["-r", f"__node:={self.node_name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace if self.namespace.startswith('/') else '/' + self.namespace}"]
        for path in self.params_files:
            args += ["--params-file", str(path)]
        for name, value in self.overrides.items():
            args += ["-p", f"{name}:={_format_value(value)}"]
        for source, target in self.remap_rules():
            args += ["-r", f"{source}:={target}"]
        if self.log_level:
            args += ["--log-level", self.log_level]
        return args

    def command(self, python: str = sys.executable) -> list[str]:
        """argv that starts the node in a new process with ``python -m``."""
        return [python, "-m", MODULE, *self.ros_arguments()]
