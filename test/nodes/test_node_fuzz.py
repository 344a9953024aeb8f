"""Semantic fuzzing of the planner node across processes: well-formed messages with hostile meaning.

Beside test_planner_node.py's fuzzer of malformed bytes, this one sends sequences of frames whose messages are valid
CDR but carry future, past, invalid or repeated stamps, extreme finite odometry (speeds up to 1.7e308, yaw rates)
and point clouds with extreme coordinates, mixed with lifecycle transitions made while valid frames keep arriving.
After every sequence, planning must resume within ``RESUME_FRAMES`` valid frames (a velocity jump that a second
message confirms costs one more frame than a single hostile message); at the end no published plan is non-finite,
the planning step never failed, and every message the node received is accounted for in /diagnostics.

CI runs ``NODE_FUZZ_EXAMPLES`` (default 30) derandomized sequences in well under a minute; docs/ros_node.md gives
the longer run and its figures.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from builtin_interfaces.msg import Time  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from ros_harness import Probe, started_stub_node, wait_until  # noqa: E402

from diffusiondrive_ros.nodes import converters  # noqa: E402
from diffusiondrive_ros.nodes.topics import SENSOR_INPUTS  # noqa: E402

pytestmark = pytest.mark.ros
EXAMPLES = int(os.environ.get("NODE_FUZZ_EXAMPLES", "30"))
FRAME_GAP_S = 0.02  # 50 Hz: the node is under load while the sequence runs
RESUME_FRAMES = 3
LIFECYCLE = {
    "deactivate_activate": (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE),
    "cleanup_configure_activate": (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                                   Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE),
}

finite = st.floats(allow_nan=False, allow_infinity=False)
plausible_or_extreme = st.one_of(st.floats(-80.0, 80.0), finite, st.sampled_from([1.7e308, -1.7e308, 1e39, 1e6]))
stamp_offsets = st.one_of(st.sampled_from([-3600.0, -5.0, -0.6, -0.05, 0.0, 0.03, 0.3, 0.49, 0.51, 2.0, 3600.0, 1e8]),
                          st.floats(-10.0, 10.0))
EVENTS = st.one_of(
    st.tuples(st.just("valid")),
    st.tuples(st.just("offset"), st.sampled_from(SENSOR_INPUTS), stamp_offsets),
    st.tuples(st.just("nanosec"), st.sampled_from(SENSOR_INPUTS), st.integers(10**9, 2**32 - 1)),
    st.tuples(st.just("sec"), st.sampled_from(SENSOR_INPUTS), st.sampled_from([0, -1, -(2**31)])),
    st.tuples(st.just("repeat"), st.sampled_from(SENSOR_INPUTS), st.integers(0, 3)),  # a message k frames old
    st.tuples(st.just("odometry"), plausible_or_extreme, plausible_or_extreme, st.one_of(st.floats(-4, 4), finite)),
    st.tuples(st.just("cloud"), st.floats(width=32, allow_nan=False, allow_infinity=False), st.integers(1, 3000)),
    st.tuples(st.just("lifecycle"), st.sampled_from(sorted(LIFECYCLE))),
)


@pytest.fixture(scope="module")
def fuzz_node(ros_context, tmp_path_factory):
    yield from started_stub_node(ros_context, tmp_path_factory.mktemp("ros") / "fuzz_node.log", rate_hz=45.0)


def _message(probe: Probe, name: str, stamp: float, odometry: tuple[float, float, float] = (3.0, 0.0, 0.0),
             points: np.ndarray | None = None):
    if name.startswith("camera_"):
        return converters.rgb_to_image_msg(probe.images[0], stamp, name)
    if name == "lidar":
        return converters.xyz_to_cloud_msg(probe.points if points is None else points, stamp, "lidar")
    vx, vy, yaw_rate = odometry
    return converters.odometry_msg(vx, vy, stamp, yaw_rate=yaw_rate)


def _publisher(probe: Probe, name: str):
    return probe.cameras.get(name) or {"lidar": probe.lidar, "odometry": probe.odometry}[name]


def _with_stamp(msg, sec: int, nanosec: int):
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    return msg


class Sender:
    """Runs one event sequence: frames at FRAME_GAP_S, each with at most one hostile message."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.history: list[float] = []  # stamps of the frames sent, newest last

    def frame(self, replace: str | None = None, message=None) -> float:
        stamp = time.time()
        self.probe.publish_frame(stamp, skip=(replace,) if replace else ())
        if replace:
            _publisher(self.probe, replace).publish(message(stamp))
        self.history.append(stamp)
        time.sleep(FRAME_GAP_S)
        return stamp

    def event(self, event: tuple) -> None:
        kind, probe = event[0], self.probe
        if kind == "valid":
            self.frame()
        elif kind == "offset":
            _, name, offset = event
            self.frame(name, lambda t: _with_stamp(_message(probe, name, t), *_split(t + offset)))
        elif kind == "nanosec":
            _, name, nanosec = event
            self.frame(name, lambda t: _with_stamp(_message(probe, name, t), int(t), nanosec))
        elif kind == "sec":
            _, name, sec = event
            self.frame(name, lambda t: _with_stamp(_message(probe, name, t), sec, 0))
        elif kind == "repeat":
            _, name, back = event
            old = self.history[-1 - back] if len(self.history) > back else time.time() - 1.0
            self.frame(name, lambda t: _message(probe, name, old))
        elif kind == "odometry":
            self.frame("odometry", lambda t: _message(probe, "odometry", t, odometry=event[1:]))
        elif kind == "cloud":
            _, value, count = event
            points = probe.points.astype(np.float32)
            points[:count, count % 3] = value
            self.frame("lidar", lambda t: _message(probe, "lidar", t, points=points))
        else:
            self.lifecycle(LIFECYCLE[event[1]])

    def lifecycle(self, transitions: tuple[int, ...]) -> None:
        """The transitions, one after the other, while valid frames keep arriving from another thread."""
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                self.probe.publish_frame(time.time())
                time.sleep(FRAME_GAP_S)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        try:
            for transition in transitions:
                assert self.probe.transition(transition), f"transition {transition} failed"
        finally:
            stop.set()
            thread.join()
        self.history.clear()


def _split(seconds: float) -> tuple[int, int]:
    """(sec, nanosec) of any float, negative ones included (a valid nanosec, a negative sec)."""
    sec = int(np.floor(seconds))
    return max(min(sec, 2**31 - 1), -(2**31)), int((seconds - np.floor(seconds)) * 1e9) % 1_000_000_000


def _plan_stamps(probe: Probe) -> set[float]:
    with probe.lock:
        return {round(converters.stamp_to_seconds(m.header.stamp), 6) for _, m in probe.paths}


def test_semantic_fuzz_never_stops_planning_for_long(fuzz_node) -> None:
    node, probe = fuzz_node
    sender = Sender(probe)
    runs = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(events=st.lists(EVENTS, min_size=1, max_size=8))
    def sequence(events):
        for event in events:
            sender.event(event)
        resumed = []
        for _ in range(RESUME_FRAMES):
            resumed.append(round(sender.frame(), 6))
            time.sleep(0.03)
        wait_until(lambda: bool(_plan_stamps(probe) & set(resumed)), 3.0,
                   f"a plan within {RESUME_FRAMES} valid frames after {events}")
        runs.append(events)

    started = time.monotonic()
    sequence()
    assert len(runs) == EXAMPLES and node.alive(), node.log()[-3000:]
    with probe.lock:
        paths = [m for _, m in probe.paths]
    assert all(np.isfinite(converters.path_to_trajectory(m)[0]).all() for m in paths)
    log = node.log()
    assert "planning failed" not in log and "Traceback" not in log, log[-3000:]
    # Accounting: once inactive (the store cleared), every message received is used, unused, rejected or ignored.
    assert probe.transition(Transition.TRANSITION_DEACTIVATE)
    time.sleep(0.3)
    mark = time.monotonic()
    wait_until(lambda: probe.latest_diagnostics(mark) is not None, 5.0, "a report after deactivate")
    diag = probe.latest_diagnostics(mark)
    for name in SENSOR_INPUTS:
        parts = {key: int(value) for key, value in diag.items()
                 if key in (f"used.{name}", f"ignored.{name}:inactive")
                 or key.startswith((f"unused.{name}:", f"rejected.{name}:"))}
        assert int(diag.get(f"received.{name}", 0)) == sum(parts.values()) > 0, (name, parts, diag)
    assert int(diag["plans_published"]) > EXAMPLES
    print(f"{EXAMPLES} sequences in {time.monotonic() - started:.1f} s; plans {diag['plans_published']}, "
          f"rejected {diag['rejected_total']}, dropped_frames {diag['dropped_frames']}")
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
