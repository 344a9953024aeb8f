"""rosbag2 (MCAP) bags of the planner node's topics: write sensor bags, replay them into a node, record topics.

Messages are built with the node's own converters and serialized by rclpy, so a bag carries exactly what a live
sensor driver would publish; ``rosbags`` writes and reads the files (rosbag2_py has no PyPI wheel). Replay publishes
the stored CDR bytes unchanged except for the header stamp, which is shifted to the replay's wall clock by default:
the node drops inputs older than ``stale_after_s``, so a bag recorded yesterday would otherwise never be planned on.
"""

from __future__ import annotations

import importlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..contract import DRIVING_COMMANDS
from ..runtime.types import SensorFrame
from .params import CAMERA_TRANSPORTS, NODE_NAME
from .topics import CAMERA_INPUTS, INPUT_TOPICS, OUTPUT_TOPICS

log = logging.getLogger(__name__)

TYPESTORE = get_typestore(Stores.ROS2_KILTED)  # the message definitions of the ROS 2 wheels used here
BAG_VERSION = 9
# CDR: a 4-byte encapsulation header, then the message; a leading std_msgs/Header starts with stamp (int32, uint32).
CDR_LITTLE_ENDIAN = (b"\x00\x01", b"\x00\x03")  # CDR_LE, PL_CDR_LE
CDR_BIG_ENDIAN = (b"\x00\x00", b"\x00\x02")
STAMP_OFFSET = 4
# Node outputs recorded during a replay: short name -> message type.
OUTPUT_TYPES = {
    "trajectory": "nav_msgs/msg/Path",
    "candidates_raw": "std_msgs/msg/Float32MultiArray",
    "diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


class BagError(ValueError):
    """A bag, topic or message that cannot be used as asked."""


# -- topic names -------------------------------------------------------------------------------------------------
def resolve_topic(topic: str, node_name: str = NODE_NAME, namespace: str = "") -> str:
    """The absolute name of ``topic`` as a node ``node_name`` in ``namespace`` resolves it (``~/x``, ``x``, ``/x``)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if topic.startswith("/"):
        return topic
    if topic.startswith("~/"):
        return f"{ns}/{node_name}/{topic[2:]}"
    return f"{ns}/{topic}"


def node_topics(node_name: str = NODE_NAME, namespace: str = "", remaps: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """Short name (``camera_front``, ``trajectory``, ...) -> absolute topic of a planner node, after remaps."""
    remaps = dict(remaps or {})
    known = {**INPUT_TOPICS, **OUTPUT_TOPICS}
    unknown = sorted(set(remaps) - set(known))
    if unknown:
        raise BagError(f"unknown topic name(s) {unknown}; known: {sorted(known)}")
    return {name: resolve_topic(remaps.get(name) or private, node_name, namespace) for name, private in known.items()}


def parse_topic_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["lidar=/sensing/points", ...]`` -> {"lidar": "/sensing/points"}."""
    out = {}
    for item in items:
        name, sep, topic = item.partition("=")
        if not sep or not name or not topic:
            raise BagError(f"expected NAME=TOPIC, got {item!r}")
        out[name.strip()] = topic.strip()
    return out


# -- message types and CDR ---------------------------------------------------------------------------------------
def message_class(type_name: str) -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy message class."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise BagError(f"expected a message type like 'sensor_msgs/msg/Image', got {type_name!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError) as err:
        raise BagError(f"message type {type_name!r} is not installed: {err}") from err


def type_name_of(msg_class: type) -> str:
    """The rclpy message class -> ``package/msg/Name``."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


def has_leading_header(type_name: str) -> bool:
    """Whether the message's first field is a std_msgs/Header (so its stamp sits at a fixed CDR offset)."""
    if type_name not in TYPESTORE.fielddefs:
        return False
    fields = TYPESTORE.fielddefs[type_name][1]
    return bool(fields) and fields[0][1][1] == "std_msgs/msg/Header"


def header_stamp_ns(data: bytes | memoryview) -> int:
    """The header stamp [ns] of a CDR message whose first field is a std_msgs/Header."""
    order = _byte_order(data)
    sec, nanosec = struct.unpack_from(order + "iI", data, STAMP_OFFSET)
    return sec * 1_000_000_000 + nanosec


def write_stamp(buffer: bytearray | memoryview, stamp_ns: int) -> None:
    """Replace, in place, the header stamp of a CDR message whose first field is a std_msgs/Header."""
    if stamp_ns < 0:
        raise BagError(f"cannot write a negative stamp {stamp_ns} ns")
    struct.pack_into(_byte_order(buffer) + "iI", buffer, STAMP_OFFSET, *divmod(int(stamp_ns), 1_000_000_000))


def restamp_cdr(data: bytes | memoryview, stamp_ns: int) -> bytes:
    """A copy of a CDR message (first field a std_msgs/Header) with its header stamp replaced by ``stamp_ns``."""
    out = bytearray(data)
    write_stamp(out, stamp_ns)
    return bytes(out)


def _byte_order(data: bytes | memoryview) -> str:
    if len(data) < STAMP_OFFSET + 8:
        raise BagError(f"a {len(data)}-byte message cannot hold a header stamp")
    kind = bytes(data[:2])
    if kind in CDR_LITTLE_ENDIAN:
        return "<"
    if kind in CDR_BIG_ENDIAN:
        return ">"
    raise BagError(f"unknown CDR encapsulation {kind!r}")


# -- sensor frames -> messages -----------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """``"480x270"`` -> (480, 270)."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height)) if sep else None
    except ValueError:
        size = None
    if size is None or min(size) < 1:
        raise BagError(f"expected a size WIDTHxHEIGHT such as 1920x1080, got {text!r}")
    return size


def frame_messages(frame: SensorFrame, stamp_s: float, camera_transport: str = "raw") -> dict[str, object]:
    """Short input name -> the rclpy message a sensor driver would publish for this frame at ``stamp_s``."""
    from . import converters

    if camera_transport not in CAMERA_TRANSPORTS:
        raise BagError(f"camera transport {camera_transport!r}; expected one of {CAMERA_TRANSPORTS}")
    to_image = converters.rgb_to_image_msg if camera_transport == "raw" else converters.rgb_to_compressed_msg
    messages: dict[str, object] = {
        name: to_image(img, stamp_s, name) for name, img in zip(CAMERA_INPUTS, frame.cameras)
    }
    messages["lidar"] = converters.xyz_to_cloud_msg(np.asarray(frame.lidar_points)[:, :3], stamp_s, "lidar",
                                                    intensity=True)
    messages["odometry"] = converters.odometry_msg(*frame.velocity, stamp_s=stamp_s)
    return messages


def command_message(index: int, command_type: str = "uint8") -> object:
    from std_msgs.msg import Int32, UInt8

    return (UInt8 if command_type == "uint8" else Int32)(data=int(index))


@dataclass
class BagSummary:
    """What a bag holds: message count per topic, the frame stamps [s] and its duration."""

    path: Path
    counts: dict[str, int]
    frame_stamps: list[float] = field(default_factory=list)
    duration_s: float = 0.0


def write_sensor_bag(out: str | Path, frames: Iterable[SensorFrame], topics: Mapping[str, str],
                     start_stamp_s: float = 1.0, camera_transport: str = "raw", command_type: str = "uint8",
                     progress: Callable[[int], None] | None = None) -> BagSummary:
    """Write the node's input topics for every frame to a new MCAP bag; log time = header stamp.

    ``topics`` maps the short input names (camera_left, ..., lidar, odometry, command) to topic names; the command
    is written before the first frame and whenever it changes (it is a rare, reliable event).
    """
    from rclpy.serialization import serialize_message

    missing = sorted(set(INPUT_TOPICS) - set(topics))
    if missing:
        raise BagError(f"no topic name for input(s) {missing}")
    if command_type not in ("uint8", "int32"):
        raise BagError(f"command type {command_type!r}; expected uint8 or int32")
    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists; rosbag2 writes a new folder")
    counts = {topics[name]: 0 for name in INPUT_TOPICS}
    stamps: list[float] = []
    last_command = None
    with Writer(out, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}

        def write(name: str, msg: object, stamp_ns: int) -> None:
            topic = topics[name]
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, type_name_of(type(msg)), typestore=TYPESTORE)
            writer.write(connections[topic], stamp_ns, serialize_message(msg))
            counts[topic] += 1

        for i, frame in enumerate(frames):
            stamp_s = start_stamp_s + float(frame.stamp)
            if stamps and stamp_s <= stamps[-1]:
                raise BagError(f"frame {i}: stamp {stamp_s} s is not after the previous {stamps[-1]} s")
            stamp_ns = int(round(stamp_s * 1e9))
            command = frame.command_index()
            if command != last_command:
                write("command", command_message(command, command_type), stamp_ns)
                last_command = command
            for name, msg in frame_messages(frame, stamp_s, camera_transport).items():
                write(name, msg, stamp_ns)
            stamps.append(stamp_s)
            if progress is not None:
                progress(i + 1)
    if not stamps:
        raise BagError("no frames to write")
    log.info("wrote %d frames to %s (commands: %s)", len(stamps), out, DRIVING_COMMANDS[last_command])
    return BagSummary(out, counts, stamps, stamps[-1] - stamps[0])


def read_bag(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, message type, log time [ns], CDR bytes) of every message, in log-time order."""
    wanted = None if topics is None else set(topics)
    with Reader(Path(path)) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for connection, timestamp, data in reader.messages(connections=connections):
            yield connection.topic, connection.msgtype, timestamp, data


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """Topic -> (message type, message count) of a bag."""
    with Reader(Path(path)) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def read_messages(path: str | Path, topic: str) -> list[tuple[int, object]]:
    """(log time [ns], rclpy message) of every message on ``topic``."""
    from rclpy.serialization import deserialize_message

    types = bag_topics(path)
    if topic not in types:
        raise BagError(f"{path} has no topic {topic!r}; topics: {sorted(types)}")
    msg_class = message_class(types[topic][0])
    return [(t, deserialize_message(bytes(data), msg_class)) for _, _, t, data in read_bag(path, [topic])]


# -- live topics: recording ----------------------------------------------------------------------------------------
class TopicRecorder:
    """Records topics of a running graph into a new MCAP bag as serialized bytes (log time = receive time).

    Topics with a known type are subscribed at once; the others when the graph first shows a publisher (call
    :meth:`discover` periodically). Publishers that are all reliable are subscribed reliably, others best effort.
    """

    def __init__(self, node, out: str | Path, topics: Mapping[str, str | None], depth: int = 50) -> None:
        self.node = node
        self.out = Path(out)
        if self.out.exists():
            raise BagError(f"{self.out} exists; rosbag2 writes a new folder")
        self.depth = depth
        self.pending = dict(topics)
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connections = {}
        self._subscriptions = []
        self._writer = Writer(self.out, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._closed = False
        self.discover()

    def discover(self) -> list[str]:
        """Subscribe to every pending topic whose type is known or now visible; returns those still pending."""
        graph = dict(self.node.get_topic_names_and_types())
        for topic, type_name in list(self.pending.items()):
            if type_name is None and graph.get(topic):
                type_name = graph[topic][0]
            if type_name is not None:
                self._subscribe(topic, type_name)
                del self.pending[topic]
        return sorted(self.pending)

    def _subscribe(self, topic: str, type_name: str) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        publishers = self.node.get_publishers_info_by_topic(topic)
        reliable = bool(publishers) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                                            for p in publishers)
        qos = QoSProfile(depth=self.depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        with self._lock:
            self._connections[topic] = self._writer.add_connection(topic, type_name, typestore=TYPESTORE)
            self.counts[topic] = 0
        self._subscriptions.append(self.node.create_subscription(
            message_class(type_name), topic, lambda data, t=topic: self._write(t, data), qos, raw=True))
        log.info("recording %s (%s, %s)", topic, type_name, "reliable" if reliable else "best effort")

    def wait_for_publishers(self, timeout_s: float) -> list[str]:
        """Wait until every subscribed topic has a matched publisher; returns the topics still without one."""
        deadline = time.monotonic() + timeout_s
        while True:
            unmatched = sorted(s.topic_name for s in self._subscriptions if s.get_publisher_count() == 0)
            if not unmatched or time.monotonic() > deadline:
                return unmatched
            time.sleep(0.02)

    def _write(self, topic: str, data: bytes) -> None:
        now_ns = time.time_ns()
        with self._lock:
            if not self._closed:
                self._writer.write(self._connections[topic], now_ns, data)
                self.counts[topic] += 1

    def close(self) -> dict[str, int]:
        """Stop recording and finish the bag; returns the message count per topic."""
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions.clear()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()
        return dict(self.counts)


# -- live topics: replay -----------------------------------------------------------------------------------------
@dataclass
class ReplayReport:
    """What a replay published: counts per topic, the (rewritten) header stamps per topic, timing."""

    published: dict[str, int]
    stamps_ns: dict[str, list[int]]
    wall_s: float
    max_lag_s: float  # how far publishing fell behind the recorded schedule
    recorded: dict[str, int] = field(default_factory=dict)


def replay_bag(node, bag: str | Path, rate: float = 1.0, restamp: bool = True, wait_for_subscribers_s: float = 10.0,
               topics: Iterable[str] | None = None, start_delay_s: float = 1.0,
               progress: Callable[[int], None] | None = None) -> ReplayReport:
    """Publish a bag's messages from ``node`` at ``rate`` x their recorded pace (log times).

    The node must be spun by an executor in another thread (so that matching and a recorder work meanwhile).
    ``restamp`` shifts header stamps by the same offset as the schedule (wall clock now - first log time) so that
    their spacing and the synchronisation between sensors are kept. Publishers are reliable (a best-effort
    subscriber still matches them). ``start_delay_s`` waits after the publishers see their subscribers: discovery
    is not symmetric, and a best-effort reader that has not yet matched the writer silently drops what it sends.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    if rate <= 0:
        raise BagError(f"rate must be > 0, got {rate}")
    types = bag_topics(bag)
    chosen = sorted(types if topics is None else set(topics))
    unknown = sorted(set(chosen) - set(types))
    if unknown:
        raise BagError(f"{bag} has no topic(s) {unknown}; topics: {sorted(types)}")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publishers = {t: node.create_publisher(message_class(types[t][0]), t, qos) for t in chosen}
    stamped = {t: has_leading_header(types[t][0]) for t in chosen}
    try:
        _wait_for_subscribers(publishers, wait_for_subscribers_s)
        time.sleep(start_delay_s)
        published = dict.fromkeys(chosen, 0)
        stamps: dict[str, list[int]] = {t: [] for t in chosen}
        max_lag, start_wall, start_mono, first = 0.0, time.time_ns(), time.monotonic(), None
        for i, (topic, _, log_ns, data) in enumerate(read_bag(bag, chosen)):
            first = log_ns if first is None else first
            due = start_mono + (log_ns - first) * 1e-9 / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
            if stamped[topic]:
                if restamp:
                    stamp = start_wall + int((header_stamp_ns(data) - first) / rate)
                    data = restamp_cdr(data, stamp)
                else:
                    stamp = header_stamp_ns(data)
                stamps[topic].append(stamp)
            publishers[topic].publish(bytes(data))
            published[topic] += 1
            if progress is not None:
                progress(i + 1)
        wall = time.monotonic() - start_mono
    finally:
        for publisher in publishers.values():
            node.destroy_publisher(publisher)
    return ReplayReport(published, stamps, wall, max_lag)


def _wait_for_subscribers(publishers: Mapping[str, object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        unmatched = sorted(t for t, p in publishers.items() if p.get_subscription_count() == 0)
        if not unmatched:
            return
        if time.monotonic() > deadline:
            log.warning("no subscriber after %.1f s on %s; replaying anyway", timeout_s, unmatched)
            return
        time.sleep(0.02)


def output_topics(topics: Mapping[str, str], diagnostics_topic: str) -> dict[str, str]:
    """Topic -> type of the node outputs a replay records (trajectory, candidates_raw, diagnostics)."""
    names = {"trajectory": topics["trajectory"], "candidates_raw": topics["candidates_raw"],
             "diagnostics": diagnostics_topic}
    return {names[k]: v for k, v in OUTPUT_TYPES.items()}

