"""The node tests' shared setup: this folder on sys.path, and a ROS context per test module.

Two modules here are imported by name rather than collected only: ros_harness.py (the node process and the DDS probe,
shared by test_planner_node.py and test_bags.py) and test_stub_planner.py, which the node loads as the custom backend
``test_stub_planner:StubPlanner`` (node processes get this folder on their PYTHONPATH from ros_harness.NodeProcess).
The importlib import mode leaves sys.path alone, so the folder is added here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NODES_TEST_DIR = Path(__file__).resolve().parent
if str(NODES_TEST_DIR) not in sys.path:
    sys.path.insert(0, str(NODES_TEST_DIR))


@pytest.fixture(scope="module")
def ros_context():
    """An rclpy context in this run's ROS domain, with the DDS settings of the node processes."""
    rclpy = pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")
    from ros_harness import DDS_ENV, domain_id

    saved = {k: os.environ.get(k) for k in DDS_ENV}
    os.environ.update(DDS_ENV)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id())
    yield context
    rclpy.try_shutdown(context=context)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
