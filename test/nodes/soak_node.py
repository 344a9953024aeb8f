"""Soak the planner node: a long 45 Hz stream across processes, the node's memory sampled all along.

    python test/nodes/soak_node.py --duration 600 --rate 45 --camera-size 480x270 --json /tmp/soak.json

The node runs in its own process from the shared command line (ros_harness.NodeProcess), with the stub planner
(default; real pre- and postprocessing around a numpy network) or ``--backend onnxruntime --model models/tiny``.
This process publishes three rgb8 images, a point cloud and odometry per frame, each serialized once and then
re-stamped in place (stamp = the frame's trigger time), from one thread at ``--rate`` Hz; ``--hostile-every N``
replaces one message of every N-th frame by a hostile one (future or invalid stamps, extreme odometry, points at
3e38 m, truncated data). It reports:

- RSS of the node (VmRSS, and its anonymous / shared-memory parts) at the end of ``--warmup`` and afterwards:
  growth = (last minute's median - warm-up value) / warm-up value, and the maximum;
- frames: published valid frames, those planned (a Path with the frame's stamp arrived), and the fraction;
- whether the node stayed alive, its exit code after SIGTERM, and its last /diagnostics counters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from ros_harness import DDS_ENV, NodeProcess, domain_id  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from diffusiondrive_ros.nodes import converters  # noqa: E402
from diffusiondrive_ros.nodes.launch_spec import NodeLaunch  # noqa: E402
from diffusiondrive_ros.nodes.params import NODE_NAME  # noqa: E402
from diffusiondrive_ros.nodes.topics import INPUT_TOPICS, OUTPUT_TOPICS  # noqa: E402

STAMP_OFFSET = 4  # header.stamp.sec (int32) then .nanosec (uint32) right after the 4-byte CDR encapsulation header
SENSORS = ("camera_left", "camera_front", "camera_right", "lidar", "odometry")


def restamp(buffer: bytearray, stamp: float) -> None:
    sec = int(stamp)
    struct.pack_into("<iI", buffer, STAMP_OFFSET, sec, int(round((stamp - sec) * 1e9)) % 1_000_000_000)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and its parts from /proc/<pid>/status, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0])
    return out


def hostile_messages(camera_shape: tuple[int, int, int], points: np.ndarray) -> list[tuple[str, str, object]]:
    """(name, input, message builder(stamp)) for one-message faults a frame may carry instead of a valid message."""
    image = np.zeros(camera_shape, np.uint8)

    def image_at(stamp: float, sec: int | None = None, nanosec: int | None = None) -> Image:
        msg = converters.rgb_to_image_msg(image, stamp, "camera")
        if sec is not None:
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        return msg

    def truncated(stamp: float) -> Image:
        msg = image_at(stamp)
        msg.data = bytes(msg.data[: len(msg.data) // 2])
        return msg

    far = np.full((100, 3), 3e38, np.float32)
    return [
        ("future_hour", "camera_left", lambda t: image_at(t + 3600.0)),
        ("bad_nanosec", "camera_front", lambda t: image_at(t, int(t), 4_000_000_000)),
        ("lidar_2s_ahead", "lidar", lambda t: converters.xyz_to_cloud_msg(points, t + 2.0, "lidar")),
        ("lidar_far", "lidar", lambda t: converters.xyz_to_cloud_msg(far, t, "lidar")),
        ("vx_1e300", "odometry", lambda t: converters.odometry_msg(1e300, 0.0, t)),
        ("vx_1e39", "odometry", lambda t: converters.odometry_msg(1e39, 0.0, t)),
        ("vx_max", "odometry", lambda t: converters.odometry_msg(1.7e308, -1.7e308, t)),
        ("vx_jump", "odometry", lambda t: converters.odometry_msg(45.0, 0.0, t)),
        ("truncated", "camera_right", truncated),
    ]


class Driver:
    """Publishes the node's inputs and records its outputs, in this process."""

    def __init__(self, context, camera_size: tuple[int, int], n_points: int) -> None:
        self.node = rclpy.create_node(f"soak_{os.getpid()}", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        base = f"/{NODE_NAME}/"
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        types = {"lidar": PointCloud2, "odometry": Odometry}
        self.pubs = {n: self.node.create_publisher(types.get(n, Image), base + INPUT_TOPICS[n][2:], qos)
                     for n in SENSORS}
        rng = np.random.default_rng(0)
        width, height = camera_size
        self.camera_shape = (height, width, 3)
        self.points = np.concatenate([rng.uniform(-40, 40, (n_points, 2)), rng.uniform(0, 3, (n_points, 1))], 1)
        messages = {n: converters.rgb_to_image_msg(rng.integers(0, 255, self.camera_shape, dtype=np.uint8), 1.0, n)
                    for n in SENSORS[:3]}
        messages["lidar"] = converters.xyz_to_cloud_msg(self.points, 1.0, "lidar", intensity=True)
        messages["odometry"] = converters.odometry_msg(8.0, 0.0, 1.0)
        self.buffers = {n: bytearray(serialize_message(m)) for n, m in messages.items()}
        self.lock = threading.Lock()
        self.planned: set[int] = set()  # frame stamps in ns of received Paths
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(PathMsg, base + OUTPUT_TOPICS["trajectory"][2:], self._on_path, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_path(self, msg: PathMsg) -> None:
        with self.lock:
            self.planned.add(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"/{NODE_NAME}: "):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

    def wait_for_discovery(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(p.get_subscription_count() > 0 for p in self.pubs.values()):
            if time.monotonic() > deadline:
                raise SystemExit("the node's subscriptions were not discovered")
            time.sleep(0.05)

    def publish_frame(self, stamp: float, hostile: tuple[str, str, object] | None = None) -> None:
        for name in SENSORS:
            if hostile is not None and hostile[1] == name:
                self.pubs[name].publish(hostile[2](stamp))
                continue
            buffer = self.buffers[name]
            restamp(buffer, stamp)
            self.pubs[name].publish(bytes(buffer))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def stamp_ns(stamp: float) -> int:
    sec = int(stamp)
    return sec * 1_000_000_000 + int(round((stamp - sec) * 1e9)) % 1_000_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured after the warm-up")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the RSS reference is taken")
    parser.add_argument("--rate", type=float, default=45.0)
    parser.add_argument("--camera-size", default="480x270", help="WxH of the three images (16:9)")
    parser.add_argument("--points", type=int, default=3000)
    parser.add_argument("--backend", default="test_stub_planner:StubPlanner")
    parser.add_argument("--model", default="", help="model_path for the node (e.g. models/tiny with onnxruntime)")
    parser.add_argument("--hostile-every", type=int, default=0, help="every N-th frame carries one hostile message")
    parser.add_argument("--log", default="/tmp/soak_node.log")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.camera_size.split("x"))
    overrides = {"backend": args.backend, "autostart": True, "rate_hz": args.rate, "diagnostics_period_s": 1.0}
    if args.model:
        overrides["model_path"] = args.model
    if args.backend == "onnxruntime":
        overrides["backend_options"] = "{providers: [CPUExecutionProvider], intra_op_threads: 1}"
    os.environ.update(DDS_ENV)
    node = NodeProcess(NodeLaunch(overrides=overrides), Path(args.log))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id())
    driver = Driver(context, (width, height), args.points)
    hostile = hostile_messages(driver.camera_shape, driver.points)
    samples: list[tuple[float, dict[str, int]]] = []
    valid: list[int] = []
    hostile_frames = 0
    try:
        driver.wait_for_discovery(120.0)
        deadline = time.monotonic() + 120.0
        while driver.diagnostics.get("state") != "active":
            if time.monotonic() > deadline or not node.alive():
                raise SystemExit(f"node did not become active:\n{node.log()[-3000:]}")
            time.sleep(0.1)
        start = time.monotonic()
        period = 1.0 / args.rate
        end = start + args.warmup + args.duration
        next_sample, k = start, 0
        while (now := time.monotonic()) < end and node.alive():
            trigger = start + k * period
            if trigger > now:
                time.sleep(trigger - now)
            stamp = time.time()
            fault = None
            if args.hostile_every and k % args.hostile_every == args.hostile_every - 1:
                fault = hostile[(k // args.hostile_every) % len(hostile)]
                hostile_frames += 1
            driver.publish_frame(stamp, fault)
            if fault is None and now - start >= args.warmup:
                valid.append(stamp_ns(stamp))
            k += 1
            if now >= next_sample:
                samples.append((now - start, memory_kb(node.process.pid)))
                next_sample += 1.0
        time.sleep(1.0)  # the last plans arrive
        alive = node.alive()
        with driver.lock:
            planned = sum(stamp in driver.planned for stamp in valid)
            diagnostics = dict(driver.diagnostics)
    finally:
        driver.close()
        rclpy.try_shutdown(context=context)
        stop_started = time.monotonic()
        exit_code = node.stop()
        stop_s = time.monotonic() - stop_started
    warm = [m for t, m in samples if t <= args.warmup]
    after = [m for t, m in samples if t > args.warmup]
    last_minute = [m for t, m in samples if t > samples[-1][0] - 60.0] if samples else []

    def growth(key: str) -> dict[str, float]:
        reference = warm[-1][key]
        tail = statistics.median(m[key] for m in last_minute)
        return {"warmup_mb": reference / 1024, "last_minute_median_mb": tail / 1024,
                "max_mb": max(m[key] for m in after) / 1024, "growth_pct": 100.0 * (tail - reference) / reference,
                "max_growth_pct": 100.0 * (max(m[key] for m in after) - reference) / reference}

    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "frames_sent": k, "valid_frames_measured": len(valid), "planned": planned,
        "planned_pct": 100.0 * planned / max(len(valid), 1), "hostile_frames": hostile_frames,
        "node_alive_at_end": alive, "exit_code_after_sigterm": exit_code, "stop_s": stop_s,
        "rss": growth("VmRSS"), "rss_anon": growth("RssAnon"), "rss_shmem": growth("RssShmem"),
        "rss_samples_mb": [(round(t, 1), round(m["VmRSS"] / 1024, 1)) for t, m in samples],
        "diagnostics": {key: value for key, value in diagnostics.items()
                        if not key.startswith(("stage_ms", "latency"))},
    }
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    summary = {key: report[key] for key in ("frames_sent", "valid_frames_measured", "planned", "planned_pct",
                                            "hostile_frames", "node_alive_at_end", "exit_code_after_sigterm")}
    print(json.dumps({**summary, "rss": report["rss"], "rss_anon": report["rss_anon"],
                      "rss_shmem": report["rss_shmem"]}, indent=1))
    return 0 if alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
