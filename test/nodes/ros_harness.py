"""The ROS side of the node tests: the planner node in its own process and a probe that talks to it over DDS.

Shared by test_planner_node.py and test_bags.py (imported by name: test/nodes/conftest.py puts this folder on
sys.path). Import it only after ``pytest.importorskip("rclpy")``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32MultiArray, UInt8

from diffusiondrive_ros.nodes import converters
from diffusiondrive_ros.nodes.launch_spec import NodeLaunch, node_environment
from diffusiondrive_ros.nodes.params import NODE_NAME
from diffusiondrive_ros.nodes.topics import INPUT_TOPICS, OUTPUT_TOPICS

TEST_DIR = Path(__file__).resolve().parent  # test_stub_planner.py: the node loads it as a custom backend
REPO = TEST_DIR.parents[1]  # the node process runs from the checkout
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

    def __init__(self, launch: NodeLaunch, log_path: Path, extra_args: list[str] | None = None) -> None:
        """``extra_args`` go after the ``--ros-args`` of ``launch`` (e.g. ``-p name:=value`` written unquoted)."""
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()), **DDS_ENV, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(TEST_DIR), str(REPO), env.get("PYTHONPATH", "")])
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([*launch.command(), *(extra_args or [])], env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=REPO)

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


def started_stub_node(ros_context, log_path: Path, **overrides):  # noqa: ANN001, ANN201 - a pytest generator fixture
    """The stub-planner node autostarted in its own process with a probe beside it: yields (node, probe), then
    stops both. For module fixtures of tests that need a running node from the first test on."""
    launch = NodeLaunch(overrides={"backend": "test_stub_planner:StubPlanner", "autostart": True,
                                   "diagnostics_period_s": 0.25, **overrides})
    node = NodeProcess(launch, log_path)
    probe = Probe(ros_context)
    try:
        probe.wait_for_discovery(timeout=60.0)
        wait_until(lambda: probe.state() == "active", 60.0, "autostart to activate the node")
        yield node, probe
    finally:
        probe.close()
        node.stop()
