"""Process-level tests of the planner node: real DDS between this process and ``python -m ...planner_node``.

One node process (stub planner, see test_ros_stub_planner.py) serves most tests in order: lifecycle, planning,
staleness, non-finite outputs, malformed-message fuzzing. A second one runs the real torch backend (tiny config).
Discovery is awaited through publisher/subscription counts, never with fixed sleeps.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Float32MultiArray, UInt8  # noqa: E402

from diffusiondrive_ros.contract import DRIVING_COMMANDS, NUM_POSES, POSE_INTERVAL_S  # noqa: E402
from diffusiondrive_ros.nodes import converters  # noqa: E402
from diffusiondrive_ros.nodes.launch_spec import NodeLaunch, node_environment  # noqa: E402
from diffusiondrive_ros.nodes.params import NODE_NAME  # noqa: E402
from diffusiondrive_ros.nodes.plan_messages import candidates_from_array  # noqa: E402
from diffusiondrive_ros.nodes.topics import INPUT_TOPICS, OUTPUT_TOPICS  # noqa: E402

pytestmark = pytest.mark.ros

TEST_DIR = Path(__file__).resolve().parent
REPO = TEST_DIR.parent
CAMERA_SHAPE = (270, 480, 3)  # 16:9 like the 1920x1080 source, 4x smaller
# The Fast DDS profile enlarges the shared-memory segment: with the default 512 KiB one, messages of a few hundred
# KB (reduced-size images, clouds) are lost between processes. node_environment({}) names it, as for the launch file.
DDS_ENV = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
    **node_environment({}),
}


def domain_id() -> int:
    """A ROS domain per test run (from the pid) so that concurrent runs do not see each other."""
    return 1 + os.getpid() % 100


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class NodeProcess:
    """The planner node in its own process, started from the shared command-line description."""

    def __init__(self, launch: NodeLaunch, log_path: Path) -> None:
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()), **DDS_ENV, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(TEST_DIR), str(REPO), env.get("PYTHONPATH", "")])
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(launch.command(), env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=REPO)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int | None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


class Probe:
    """The test's side: publishes sensors, records outputs, drives the lifecycle and parameters of one node."""

    def __init__(self, context, node_name: str = NODE_NAME, compressed: bool = False) -> None:
        self.node = rclpy.create_node(f"probe_{os.getpid()}_{id(self) % 10000}", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        base = f"/{node_name}/"
        self.diagnostics_name = f"/{node_name}: "
        topic = {k: base + v[2:] for k, v in {**INPUT_TOPICS, **OUTPUT_TOPICS}.items()}
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        image_type = CompressedImage if compressed else Image
        self.compressed = compressed
        self.cameras = {n: self.node.create_publisher(image_type, topic[n], qos)
                        for n in ("camera_left", "camera_front", "camera_right")}
        self.lidar = self.node.create_publisher(PointCloud2, topic["lidar"], qos)
        self.odometry = self.node.create_publisher(Odometry, topic["odometry"], qos)
        self.command = self.node.create_publisher(UInt8, topic["command"], qos)
        self.lock = threading.Lock()
        self.paths: list[tuple[float, PathMsg]] = []
        self.raw: list[Float32MultiArray] = []
        self.diagnostics: list[tuple[float, dict[str, str], int]] = []
        self.node.create_subscription(PathMsg, topic["trajectory"], self._on_path, qos)
        self.node.create_subscription(Float32MultiArray, topic["candidates_raw"], self._on_raw, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.change_state = self.node.create_client(ChangeState, base + "change_state")
        self.get_state_client = self.node.create_client(GetState, base + "get_state")
        self.set_params = self.node.create_client(SetParameters, base + "set_parameters")
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 255, CAMERA_SHAPE, dtype=np.uint8) for _ in range(3)]
        self.points = np.concatenate([rng.uniform(-30, 30, (3000, 2)), rng.uniform(0, 3, (3000, 1))], 1)

    def _on_path(self, msg: PathMsg) -> None:
        with self.lock:
            self.paths.append((time.monotonic(), msg))

    def _on_raw(self, msg: Float32MultiArray) -> None:
        with self.lock:
            self.raw.append(msg)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(self.diagnostics_name):
                with self.lock:
                    self.diagnostics.append((time.monotonic(), {kv.key: kv.value for kv in status.values},
                                             status.level, status.message))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    # -- services ---------------------------------------------------------------------------------------------------
    def call(self, client, request, timeout: float = 60.0):
        assert client.wait_for_service(timeout_sec=30.0), f"service {client.srv_name} not available"
        future = client.call_async(request)
        wait_until(future.done, timeout, f"a reply from {client.srv_name}")
        return future.result()

    def state(self) -> str:
        return self.call(self.get_state_client, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self.call(self.change_state, ChangeState.Request(transition=Transition(id=transition_id))).success

    def set_parameter(self, name: str, value) -> bool:
        if isinstance(value, str):
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        elif isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
        reply = self.call(self.set_params, SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
        return all(r.successful for r in reply.results)

    # -- sensors ----------------------------------------------------------------------------------------------------
    def wait_for_discovery(self, timeout: float = 20.0) -> None:
        publishers = [*self.cameras.values(), self.lidar, self.odometry, self.command]
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in publishers), timeout,
                   "the node's subscriptions")

    def publish_frame(self, stamp: float, speed: float = 3.0, skip: tuple[str, ...] = ()) -> None:
        for (name, pub), image in zip(self.cameras.items(), self.images):
            if name not in skip:
                msg = (converters.rgb_to_compressed_msg(image, stamp, name) if self.compressed
                       else converters.rgb_to_image_msg(image, stamp, name))
                pub.publish(msg)
        if "lidar" not in skip:
            self.lidar.publish(converters.xyz_to_cloud_msg(self.points, stamp, "lidar", intensity=True))
        if "odometry" not in skip:
            self.odometry.publish(converters.odometry_msg(speed, 0.0, stamp))

    def stream(self, seconds: float, rate_hz: float = 10.0, until: Callable[[], bool] | None = None,
               **kwargs) -> float:
        """Publish frames stamped with the current time; returns the last stamp."""
        stamp, end = 0.0, time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = time.time()
            self.publish_frame(stamp, **kwargs)
            if until is not None and until():
                break
            time.sleep(1.0 / rate_hz)
        return stamp

    def path_count(self) -> int:
        with self.lock:
            return len(self.paths)

    def latest_diagnostics(self, after: float) -> dict[str, str] | None:
        with self.lock:
            recent = [d for t, d, _, _ in self.diagnostics if t > after]
        return recent[-1] if recent else None


@pytest.fixture(scope="module")
def ros_context():
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


@pytest.fixture(scope="module")
def stub_node(ros_context, tmp_path_factory):
    launch = NodeLaunch(overrides={"backend": "test_ros_stub_planner:StubPlanner", "rate_hz": 20.0,
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
    assert probe.set_parameter("backend", "test_ros_stub_planner:StubPlanner")
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
        probe.odometry.publish(odom)  # old stamps (out of order) or non-finite velocities
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
    for key in ("rejected.odometry:out_of_order", "rejected.odometry:non_finite"):
        assert int(diag.get(key, 0)) > 0, diag
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
