"""launch/planner.launch.py: imports only launch/launch_ros (+ this package) at top level; builds where they exist."""

from __future__ import annotations

import ast
import importlib.util

import pytest

from diffusiondrive_ros.nodes.launch_spec import EXECUTABLE
from diffusiondrive_ros.nodes.topics import TOPICS
from diffusiondrive_ros.resources import PACKAGE


def test_launch_file_imports_only_launch_packages_at_top_level(launch_file):
    tree = ast.parse(launch_file.read_text())
    roots = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots <= {"launch", "launch_ros", "diffusiondrive_ros"}, roots


@pytest.mark.ros
def test_launch_description_builds_the_node(launch_file):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (no PyPI wheel): launch file not executed")
    from launch import LaunchContext  # noqa: I001 (see launch/planner.launch.py)
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import perform_substitutions

    spec = importlib.util.spec_from_file_location("planner_launch", launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert {f"{name}_topic" for name in TOPICS} | {"params_file", "backend", "namespace"} <= declared
    context = LaunchContext()
    context.launch_configurations.update({a.name: perform_substitutions(context, a.default_value)
                                          for a in description.entities if isinstance(a, DeclareLaunchArgument)})
    context.launch_configurations["lidar_topic"] = "/sensing/points"
    opaque = next(a for a in description.entities if isinstance(a, OpaqueFunction))
    (node,) = opaque.execute(context)
    assert node.node_package == PACKAGE and node.node_executable == EXECUTABLE
