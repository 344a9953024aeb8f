"""Benchmark the planner node across processes: full-size sensor streams in, Path out.

This process publishes 3 x 1920x1080 rgb8 images, a 100k-point cloud and odometry at --rate Hz (pre-serialized
once, header stamp rewritten per frame, published as CDR bytes so the publisher costs almost nothing); the node
runs in another process (tiny config, ONNX Runtime CPU, --threads intra-op threads). Measured in the same run:

- achieved output rate: Paths received per second over the measured window;
- end-to-end latency: Path received (wall clock) - its header stamp (= the sensor stamp of the planned frame);
- model-only latency: the node's planner.infer time (from its /diagnostics, ``stage_ms.infer``);
- node overhead = end-to-end - model, p50 and p99 (percentiles of the two distributions, not per-frame pairs).

    python bench/bench_node.py --duration 20 --json /tmp/bench_node.json
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads of the node")
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
    diagnostics: list[dict[str, str]] = []

    def on_path(msg: PathMsg) -> None:
        now = time.time()
        with lock:
            received.append((now, stamp_to_seconds(msg.header.stamp)))

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"/{launch.node_name}:"):
                with lock:
                    diagnostics.append({kv.key: kv.value for kv in status.values})

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    sensor_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(PathMsg, topics["trajectory"], on_path, reliable)
    node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, on_diagnostics, 10)
    publishers = {name: node.create_publisher(bags.message_class(_type_of(name)), topics[name], sensor_qos)
                  for name in frame}
    publish_ms: list[float] = []
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
            stamp_ns = time.time_ns()
            t0 = time.perf_counter()
            for name, data in frame.items():
                publishers[name].publish(bags.restamp_cdr(data, stamp_ns))
            publish_ms.append((time.perf_counter() - t0) * 1e3)
            published += 1
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))
        end_wall = time.time()
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
        last_diag = diagnostics[-1] if diagnostics else {}
    e2e_ms = [(t - s) * 1e3 for t, s in window]
    measured_frames = int(round(args.duration * args.rate))
    infer = {k: float(last_diag.get(f"stage_ms.infer.{k}", "nan")) for k in ("p50", "p99")}
    plan_total = {k: float(last_diag.get(f"stage_ms.total.{k}", "nan")) for k in ("p50", "p99")}
    e2e = percentiles(e2e_ms)
    return {
        "config": args.config, "sensor_rate_hz": args.rate, "camera_size": args.camera_size, "points": args.points,
        "threads": args.threads, "fastdds_profile": not args.no_profile, "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "frames_published": published,
        "frames_planned_in_window": len(window), "frames_in_window": measured_frames,
        "output_rate_hz": len(window) / args.duration,
        "e2e_ms": e2e, "model_infer_ms": infer, "planner_plan_ms": plan_total,
        "overhead_ms": {k: e2e[k] - infer[k] for k in ("p50", "p99")},
        "publish_ms": percentiles(publish_ms),
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
    console = Console()
    console.print(table)
    console.print(f"output rate {result['output_rate_hz']:.1f} Hz ({result['frames_planned_in_window']} of "
                  f"{result['frames_in_window']} frames planned); {result['cpu_count']} CPUs, load average "
                  f"{result['load_average'][0]:.1f}; dropped ticks {result['node_diagnostics'].get('dropped_ticks')}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
