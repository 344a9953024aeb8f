"""Benchmark the planner node across processes: full-size sensor streams in, Path out.

This process publishes 3 x 1920x1080 rgb8 images, a 100k-point cloud and odometry at --rate Hz (pre-serialized
once, header stamp rewritten in place per frame, published as CDR bytes: one copy into a fresh ``bytes`` per message
before rclpy/Fast DDS copy it into shared memory); the node runs in another process (tiny config, ONNX Runtime CPU,
--threads intra-op threads). Measured in the same run:

- achieved output rate: Paths received per second over the measured window;
- end-to-end latency: Path received (wall clock) - its header stamp (= the sensor stamp of the planned frame);
- model-only latency: the node's planner.infer time (from its /diagnostics, ``stage_ms.infer``);
- node overhead = end-to-end - model, p50 and p99 (percentiles of the two distributions, not per-frame pairs);
- where the overhead goes, from the node's /diagnostics: the age of each input when its callback ran, of the newest
  input when planning starts and when the Path is published;
- CPU use of the publisher (this process) and of the node process over the measured window, in cores.

One intra-op thread is the default: on 2 cores, ONNX Runtime's second (spinning) thread competes with the DDS and
callback threads; the tiny model measured 12 ms per run with 1 thread against 24 ms with 2 (spinning on) on this
machine under load.

    python bench/bench_node.py --duration 20 --json /tmp/bench_node.json
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FASTDDS_PROFILE = REPO / "config" / "fastdds.xml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="exported planner ONNX (default: export the tiny config, random weights)")
    parser.add_argument("--config", default="tiny", help="model config")
    parser.add_argument("--rate", type=float, default=45.0, help="sensor publishing rate [Hz]")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds streamed before measuring")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads of the node")
    parser.add_argument("--points", type=int, default=100_000, help="LiDAR points per sweep")
    parser.add_argument("--camera-size", default="1920x1080", help="WIDTHxHEIGHT of each camera image")
    parser.add_argument("--no-profile", action="store_true",
                        help=f"do not use the Fast DDS profile {FASTDDS_PROFILE.relative_to(REPO)}")
    parser.add_argument("--domain", type=int, default=150 + os.getpid() % 50, help="ROS_DOMAIN_ID of the run")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def dds_environment(args: argparse.Namespace) -> dict[str, str]:
    env = {"ROS_DOMAIN_ID": str(args.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
    if not args.no_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    return env


def export_tiny(config_name: str, folder: Path) -> Path:
    from diffusiondrive_ros.model import load_config
    from diffusiondrive_ros.model.diffusiondrive import build_model
    from diffusiondrive_ros.runtime.export import export_onnx

    config = load_config(config_name)
    path = folder / f"{config_name}.onnx"
    export_onnx(build_model(config, seed=0).eval(), config, path)
    return path


def serialized_frame(config, size: tuple[int, int], points: int) -> dict[str, bytes]:
    """Short input name -> CDR bytes of one full-size frame (stamp rewritten per publish)."""
    from rclpy.serialization import serialize_message

    from diffusiondrive_ros.commands.plan import synthetic_frame
    from diffusiondrive_ros.data import bags

    config = bags.with_camera_size(config, size)
    rng = np.random.default_rng(0)
    frame = synthetic_frame(config, rng)
    cloud = np.column_stack([rng.uniform(-50, 50, points), rng.uniform(-50, 50, points), rng.uniform(-2, 3, points)])
    frame.lidar_points = cloud.astype(np.float32)
    return {name: serialize_message(msg) for name, msg in bags.frame_messages(frame, 1.0).items()}


class Restamper:
    """Rewrites the header stamp of one pre-serialized message in place and returns the bytes to publish."""

    def __init__(self, data: bytes) -> None:
        from diffusiondrive_ros.data import bags

        bags.restamp_cdr(data, 0)  # validates the encapsulation and size
        self._buffer = bytearray(data)
        self._format = ("<" if data[1] == 1 else ">") + "iI"
        self._offset = bags.STAMP_OFFSET

    def __call__(self, stamp_ns: int) -> bytes:
        struct.pack_into(self._format, self._buffer, self._offset, *divmod(stamp_ns, 1_000_000_000))
        return bytes(self._buffer)  # rclpy publishes only ``bytes``: one copy


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "n": len(values)}


def run(args: argparse.Namespace) -> dict:
    os.environ.update(dds_environment(args))  # before rclpy loads Fast DDS in this process
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path as PathMsg
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from diffusiondrive_ros.data import bags
    from diffusiondrive_ros.model import load_config
    from diffusiondrive_ros.nodes.command_line import DIAGNOSTICS_TOPIC, NodeLaunch
    from diffusiondrive_ros.nodes.converters import stamp_to_seconds

    config = load_config(args.config)
    workdir = Path(tempfile.mkdtemp(prefix="bench_node_"))
    onnx = Path(args.onnx) if args.onnx else export_tiny(args.config, workdir)
    launch = NodeLaunch(overrides={
        "backend": "onnxruntime", "model_path": str(onnx), "model_config": args.config, "autostart": True,
        "rate_hz": args.rate, "diagnostics_period_s": 0.5,
        "backend_options": f"{{providers: [CPUExecutionProvider], intra_op_threads: {args.threads}}}"})
    log_path = workdir / "node.log"
    with open(log_path, "w") as log:
        node_process = subprocess.Popen(launch.command(), env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log,
                                        stderr=subprocess.STDOUT, cwd=REPO)
    frame = serialized_frame(config, bags.parse_size(args.camera_size), args.points)
    topics = bags.node_topics()
    rclpy.init()
    node = rclpy.create_node(f"bench_node_{os.getpid()}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    lock = threading.Lock()
    received: list[tuple[float, float]] = []  # (receive wall time, Path stamp)
    diagnostics: list[tuple[float, dict[str, str]]] = []

    def on_path(msg: PathMsg) -> None:
        now = time.time()
        with lock:
            received.append((now, stamp_to_seconds(msg.header.stamp)))

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"/{launch.node_name}:"):
                with lock:
                    diagnostics.append((time.time(), {kv.key: kv.value for kv in status.values}))

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    sensor_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(PathMsg, topics["trajectory"], on_path, reliable)
    node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, on_diagnostics, 10)
    publishers = {name: node.create_publisher(bags.message_class(_type_of(name)), topics[name], sensor_qos)
                  for name in frame}
    publish_ms: list[float] = []
    restampers = {name: Restamper(data) for name, data in frame.items()}
    cpu: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 180.0
        while not all(p.get_subscription_count() for p in publishers.values()) or not diagnostics:
            if node_process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        time.sleep(1.0)  # asymmetric discovery: let the node's readers match this writer too
        period = 1.0 / args.rate
        start = time.monotonic()
        measure_from = start + args.warmup
        end = measure_from + args.duration
        tick, published = start, 0
        measure_wall = None
        while tick < end:
            if measure_wall is None and tick >= measure_from:
                measure_wall = time.time()
                cpu.update(bench_start=time.process_time(), node_start=cpu_seconds(node_process.pid),
                           wall_start=time.monotonic())
            stamp_ns = time.time_ns()
            t0 = time.perf_counter()
            for name, restamp in restampers.items():
                publishers[name].publish(restamp(stamp_ns))
            publish_ms.append((time.perf_counter() - t0) * 1e3)
            published += 1
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))
        end_wall = time.time()
        cpu.update(bench_end=time.process_time(), node_end=cpu_seconds(node_process.pid), wall_end=time.monotonic())
        time.sleep(1.0)  # the last plans
    finally:
        node_process.terminate()
        try:
            node_process.wait(15)
        except subprocess.TimeoutExpired:
            node_process.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    with lock:
        window = [(t, s) for t, s in received if measure_wall <= s <= end_wall]
        # the node's view while it was still fed: diagnostics received after the stream stopped report stale inputs
        fed = [d for t, d in diagnostics if t <= end_wall]
        last_diag = fed[-1] if fed else {}
    e2e_ms = [(t - s) * 1e3 for t, s in window]
    measured_frames = int(round(args.duration * args.rate))
    infer = {k: float(last_diag.get(f"stage_ms.infer.{k}", "nan")) for k in ("p50", "p99")}
    plan_total = {k: float(last_diag.get(f"stage_ms.total.{k}", "nan")) for k in ("p50", "p99")}
    e2e = percentiles(e2e_ms)
    node_stages = {key[len("stage_ms.node."):-len(".p50")]: {k: float(last_diag[f"{key[:-4]}.{k}"])
                                                              for k in ("p50", "p99")}
                   for key in last_diag if key.startswith("stage_ms.node.") and key.endswith(".p50")}
    wall = cpu["wall_end"] - cpu["wall_start"]
    return {
        "config": args.config, "sensor_rate_hz": args.rate, "camera_size": args.camera_size, "points": args.points,
        "threads": args.threads, "fastdds_profile": not args.no_profile, "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "frames_published": published,
        "frames_planned_in_window": len(window), "frames_in_window": measured_frames,
        "output_rate_hz": len(window) / args.duration,
        "e2e_ms": e2e, "model_infer_ms": infer, "planner_plan_ms": plan_total,
        "overhead_ms": {k: e2e[k] - infer[k] for k in ("p50", "p99")},
        "publish_ms": percentiles(publish_ms),
        "node_stage_ms": node_stages,
        "cpu_cores": {"publisher": (cpu["bench_end"] - cpu["bench_start"]) / wall,
                      "node": (cpu["node_end"] - cpu["node_start"]) / wall},
        "node_diagnostics": last_diag,
    }


def _type_of(name: str) -> str:
    return {"lidar": "sensor_msgs/msg/PointCloud2", "odometry": "nav_msgs/msg/Odometry"}.get(
        name, "sensor_msgs/msg/Image")


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"planner node, {result['config']} on ONNX Runtime CPU ({result['threads']} threads), "
                        f"{result['sensor_rate_hz']:g} Hz of {result['camera_size']} x3 + {result['points']} points")
    table.add_column("metric")
    table.add_column("p50 [ms]", justify="right")
    table.add_column("p99 [ms]", justify="right")
    for label, key in (("end-to-end (sensor stamp -> Path received)", "e2e_ms"),
                       ("model only (planner.infer, in the node)", "model_infer_ms"),
                       ("planner.plan (preprocess + infer + postprocess)", "planner_plan_ms"),
                       ("node overhead (end-to-end - model)", "overhead_ms"),
                       ("publisher: restamp + publish one frame", "publish_ms")):
        values = result[key]
        table.add_row(label, f"{values['p50']:.1f}", f"{values['p99']:.1f}")
    for stage, values in sorted(result["node_stage_ms"].items()):
        table.add_row(f"in the node: {stage} (age of the sensor stamp)", f"{values['p50']:.1f}",
                      f"{values['p99']:.1f}")
    console = Console()
    console.print(table)
    console.print(f"output rate {result['output_rate_hz']:.1f} Hz ({result['frames_planned_in_window']} of "
                  f"{result['frames_in_window']} frames planned); {result['cpu_count']} CPUs, load average "
                  f"{result['load_average'][0]:.1f}; CPU cores used: publisher {result['cpu_cores']['publisher']:.2f}, "
                  f"node {result['cpu_cores']['node']:.2f}; frames the node received but superseded "
                  f"{result['node_diagnostics'].get('dropped_frames')}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
