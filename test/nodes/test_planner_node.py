"""Process-level tests of the planner node: real DDS between this process and ``python -m ...planner_node``.

One node process (stub planner, see test_stub_planner.py) serves most tests in order: lifecycle, planning,
staleness, non-finite outputs, malformed-message fuzzing. A second one runs the real torch backend (tiny config).
Discovery is awaited through publisher/subscription counts, never with fixed sleeps. The node process and the probe
are in ros_harness.py (shared with test_bags.py), the ``ros_context`` fixture in conftest.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
from ros_harness import NodeProcess, Probe, domain_id, wait_until  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import UInt8  # noqa: E402

from diffusiondrive_ros.contract import DRIVING_COMMANDS, NUM_POSES, POSE_INTERVAL_S  # noqa: E402
from diffusiondrive_ros.nodes import converters  # noqa: E402
from diffusiondrive_ros.nodes.launch_spec import NodeLaunch  # noqa: E402
from diffusiondrive_ros.nodes.params import NODE_NAME  # noqa: E402
from diffusiondrive_ros.nodes.plan_messages import candidates_from_array  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def stub_node(ros_context, tmp_path_factory):
    launch = NodeLaunch(overrides={"backend": "test_stub_planner:StubPlanner", "rate_hz": 20.0,
                                   "stale_after_s": 0.6, "diagnostics_period_s": 0.25})
    node = NodeProcess(launch, tmp_path_factory.mktemp("ros") / "stub_node.log")
    probe = Probe(ros_context)
    yield node, probe
    probe.close()
    node.stop()


def _assert_alive(node: NodeProcess) -> None:
    assert node.alive(), f"node process died:\n{node.log()[-4000:]}"


def _check_path(msg: PathMsg) -> None:
    assert len(msg.poses) == NUM_POSES
    assert msg.header.frame_id == "base_link"
    poses, stamps = converters.path_to_trajectory(msg)
    assert np.isfinite(poses).all()
    frame_stamp = converters.stamp_to_seconds(msg.header.stamp)
    np.testing.assert_allclose(stamps - frame_stamp, POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1), atol=2e-9)
    assert poses[-1, 0] > poses[0, 0] > 0  # the stub drives forward


def test_starts_unconfigured_and_rejects_bad_parameters(stub_node):
    node, probe = stub_node
    assert probe.state() == "unconfigured"
    assert probe.set_parameter("backend", "no_such_backend")
    assert not probe.transition(Transition.TRANSITION_CONFIGURE)
    assert probe.state() == "unconfigured"
    assert "unknown backend" in node.log()
    assert probe.set_parameter("backend", "test_stub_planner:StubPlanner")
    _assert_alive(node)


def test_configure_activate_and_plan(stub_node):
    node, probe = stub_node
    assert probe.transition(Transition.TRANSITION_CONFIGURE), node.log()
    assert probe.state() == "inactive"
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    assert probe.state() == "active"
    probe.wait_for_discovery()
    probe.stream(20.0, until=lambda: probe.path_count() >= 5)
    assert probe.path_count() >= 5, node.log()[-3000:]
    with probe.lock:
        paths = [m for _, m in probe.paths]
        raw = list(probe.raw)
    for msg in paths:
        _check_path(msg)
    stamps = [converters.stamp_to_seconds(m.header.stamp) for m in paths]
    assert len(set(stamps)) == len(stamps), "planned twice on the same input set"
    modes, scores = candidates_from_array(raw[-1])
    assert modes.shape[1:] == (NUM_POSES, 3) and scores.shape == (modes.shape[0],)
    wait_until(lambda: probe.latest_diagnostics(0.0) is not None, 10.0, "diagnostics")
    diag = probe.latest_diagnostics(0.0)
    assert diag["backend"] == "stub" and diag["state"] == "active"
    assert int(diag["plans_published"]) >= 1
    _assert_alive(node)


def test_stale_inputs_stop_planning_and_are_named(stub_node):
    node, probe = stub_node
    probe.stream(1.0)
    probe.stream(1.5, skip=("lidar",))  # lidar goes silent: stale after 0.6 s
    mark = time.monotonic()
    count = probe.path_count()
    probe.stream(1.0, skip=("lidar",))
    assert probe.path_count() == count, "planned with a stale lidar"
    wait_until(lambda: probe.latest_diagnostics(mark) is not None, 5.0, "diagnostics")
    diag = probe.latest_diagnostics(mark)
    assert diag["stale_inputs"] == "lidar", diag
    with probe.lock:
        assert probe.diagnostics[-1][2] == DiagnosticStatus.WARN
    probe.stream(10.0, until=lambda: probe.path_count() > count)  # lidar back: planning resumes
    assert probe.path_count() > count


def test_non_finite_plans_are_never_published(stub_node):
    node, probe = stub_node
    probe.command.publish(UInt8(data=DRIVING_COMMANDS.index("left")))  # the stub answers NaN
    probe.stream(1.0)
    count, mark = probe.path_count(), time.monotonic()
    probe.stream(1.0)
    assert probe.path_count() == count
    wait_until(lambda: (d := probe.latest_diagnostics(mark)) is not None and int(d["non_finite_outputs"]) > 0,
               5.0, "non_finite_outputs in diagnostics")
    with probe.lock:  # the report after the dropped plans warns and says why
        warnings = [message for t, _, level, message in probe.diagnostics
                    if t > mark and level == DiagnosticStatus.WARN]
    assert any("non-finite plan(s) dropped" in message for message in warnings), warnings
    probe.command.publish(UInt8(data=DRIVING_COMMANDS.index("straight")))
    probe.stream(10.0, until=lambda: probe.path_count() > count)
    assert probe.path_count() > count
    _assert_alive(node)


# -- malformed messages ------------------------------------------------------------------------------------------
ENCODINGS = st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "16UC1", "", "RGB8 "])


@st.composite
def malformed_images(draw):
    msg = Image(encoding=draw(ENCODINGS), height=draw(st.integers(0, 40)), width=draw(st.integers(0, 40)),
                step=draw(st.integers(0, 200)))
    msg.data = draw(st.binary(max_size=2000))
    return msg


@st.composite
def malformed_clouds(draw):
    names = draw(st.lists(st.sampled_from(["x", "y", "z", "intensity", "ring"]), max_size=5, unique=True))
    fields = [PointField(name=n, offset=draw(st.integers(0, 24)), datatype=draw(st.integers(1, 8)),
                         count=draw(st.integers(0, 2))) for n in names]
    msg = PointCloud2(height=draw(st.integers(0, 3)), width=draw(st.integers(0, 50)), fields=fields,
                      is_bigendian=draw(st.booleans()), point_step=draw(st.integers(0, 32)),
                      row_step=draw(st.integers(0, 800)))
    msg.data = draw(st.binary(max_size=1600))
    return msg


@st.composite
def malformed_odometry(draw):
    value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(float("nan")))
    return converters.odometry_msg(draw(value), draw(value), stamp_s=draw(st.floats(0, 10)))


def test_fuzzed_messages_leave_the_node_planning(stub_node):
    node, probe = stub_node
    sent = []

    @settings(max_examples=40, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(image=malformed_images(), cloud=malformed_clouds(), odom=malformed_odometry())
    def publish_malformed(image, cloud, odom):
        stamp = converters.seconds_to_stamp(time.time())
        image.header.stamp, cloud.header.stamp = stamp, stamp
        probe.cameras["camera_front"].publish(image)
        probe.lidar.publish(cloud)
        probe.odometry.publish(odom)  # old stamps (out of order), non-finite or implausible velocities
        sent.append(1)
        time.sleep(0.005)

    publish_malformed()
    assert len(sent) == 40
    # A well-formed image that is no 16:9 image is rejected as that camera's input. The sensor queue keeps only the
    # newest message, so it is sent on its own until a report counts it (a frame right behind it could replace it).
    def bad_size_counted() -> bool:
        probe.cameras["camera_front"].publish(
            converters.rgb_to_image_msg(np.zeros((64, 64, 3), np.uint8), time.time(), "camera_front"))
        diag = probe.latest_diagnostics(start)
        return diag is not None and int(diag.get("rejected.camera_front:bad_size", 0)) > 0

    start = time.monotonic()
    wait_until(bad_size_counted, 10.0, "rejected.camera_front:bad_size in diagnostics", interval=0.1)
    mark = time.monotonic()
    count = probe.path_count()
    probe.stream(15.0, until=lambda: probe.path_count() > count)
    assert probe.path_count() > count, node.log()[-3000:]
    wait_until(lambda: probe.latest_diagnostics(mark) is not None, 5.0, "diagnostics")
    diag = probe.latest_diagnostics(mark)
    assert int(diag["rejected_total"]) > 40, diag
    assert int(diag.get("rejected.odometry:non_finite", 0)) > 0, diag
    # finite fuzzed velocities are mostly beyond max_speed_mps; the rest arrive with old stamps
    assert sum(int(diag.get(f"rejected.odometry:{reason}", 0)) for reason in ("out_of_order", "implausible_speed",
                                                                             "implausible_accel")) > 0, diag
    assert int(diag.get("rejected.camera_front:bad_size", 0)) > 0, diag  # counters are cumulative
    assert any(k.startswith("rejected.lidar:") for k in diag)
    _assert_alive(node)


def test_deactivate_cleanup_and_compressed_transport(stub_node):
    node, probe = stub_node
    assert probe.transition(Transition.TRANSITION_DEACTIVATE)
    assert probe.state() == "inactive"
    probe.stream(0.5)
    count = probe.path_count()
    probe.stream(0.5)
    assert probe.path_count() == count, "published while inactive"
    assert probe.transition(Transition.TRANSITION_CLEANUP)
    assert probe.state() == "unconfigured"
    # Reconfigure for compressed images and plan again.
    assert probe.set_parameter("camera_transport", "compressed")
    assert probe.transition(Transition.TRANSITION_CONFIGURE)
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    # A second participant: one process cannot publish two types on the same topic.
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id())
    compressed = Probe(context, compressed=True)
    try:
        compressed.wait_for_discovery()
        compressed.stream(20.0, until=lambda: compressed.path_count() >= 2)
        assert compressed.path_count() >= 2, node.log()[-3000:]
        _check_path(compressed.paths[-1][1])
    finally:
        compressed.close()
        rclpy.try_shutdown(context=context)
    _assert_alive(node)


def test_real_torch_backend_with_autostart(ros_context, tmp_path_factory):
    """The tiny model (random weights) behind the node, started active by ``autostart``, under a namespace."""
    launch = NodeLaunch(overrides={"backend": "torch", "model_config": "tiny", "autostart": True, "rate_hz": 10.0,
                                   "stale_after_s": 2.0, "sync_tolerance_s": 0.02}, namespace="torch_test")
    node = NodeProcess(launch, tmp_path_factory.mktemp("ros") / "torch_node.log")
    probe = Probe(ros_context, node_name=f"torch_test/{NODE_NAME}")
    try:
        probe.wait_for_discovery(timeout=60.0)
        wait_until(lambda: probe.state() == "active", 60.0, "autostart to activate the node")
        probe.stream(40.0, rate_hz=5.0, until=lambda: probe.path_count() >= 2)
        assert probe.path_count() >= 2, node.log()[-3000:]
        for _, msg in probe.paths:
            _check_path_shape(msg)
        wait_until(lambda: (d := probe.latest_diagnostics(0.0)) is not None and d.get("backend") == "torch", 10.0,
                   "diagnostics naming the torch backend")
        assert probe.latest_diagnostics(0.0)["providers"].startswith("torch")
        _assert_alive(node)
    finally:
        probe.close()
        node.stop()


def _check_path_shape(msg: PathMsg) -> None:
    """Random weights plan anything finite: check the contract, not the shape of the trajectory."""
    assert len(msg.poses) == NUM_POSES and msg.header.frame_id == "base_link"
    poses, stamps = converters.path_to_trajectory(msg)
    assert np.isfinite(poses).all()
    np.testing.assert_allclose(stamps - converters.stamp_to_seconds(msg.header.stamp),
                               POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1), atol=2e-9)
