"""Benchmark the planner node across processes: full-size sensor streams in, Path out.

Sensor "drivers" publish 3 x 1920x1080 rgb8 images, a 100k-point cloud and odometry at --rate Hz, each stream
from its own process by default (``--drivers per-sensor``, as separate camera and LiDAR drivers would; ``single``:
one process publishes all five in turn). Every driver publishes frame k at the same trigger time
``start + k / rate`` and stamps it with that time, like hardware-triggered sensors. Messages are serialized once;
per frame the driver rewrites the header stamp in place and hands the buffer to ``rcl_publish_serialized_message``
(``--driver-publish rcl``, as a C++ driver publishes a reused message) or a fresh ``bytes`` copy to rclpy
(``rclpy``). The node runs in another process (tiny config, ONNX Runtime CPU, --threads intra-op threads) and this
process only listens. Measured in the same run:

- achieved output rate: Paths received per second over the measured window;
- end-to-end latency: Path reception (Fast DDS's reception stamp in this process) - its header stamp (the trigger
  time of the planned frame); the time this process's Python callback ran is shown next to it;
- model-only latency: the node's planner.infer time (from its /diagnostics, ``stage_ms.infer``);
- node overhead = end-to-end - model, p50 and p99 (percentiles of the two distributions, not per-frame pairs);
- where the overhead goes: how long each driver's publish call took, and from the node's /diagnostics the age
  (now - trigger stamp) of each input when its callback stored it, of the frame when planning starts and when its
  Path is published, and the wait from the newest input's arrival to the start of its plan;
- CPU use of the drivers (together) and of the node process over the measured window, in cores, and their minor
  page faults per frame.

One intra-op thread is the default: on 2 cores, ONNX Runtime's second thread competes with the DDS and callback
threads.

    python bench/bench_node.py --duration 20 --model models/tiny --json /tmp/bench_node.json
"""

from __future__ import annotations

import argparse
import ctypes
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

from diffusiondrive_ros.nodes.topics import SENSOR_INPUTS  # noqa: E402  (publishing order)

DRIVER_LAYOUTS = {"per-sensor": tuple((name,) for name in SENSOR_INPUTS), "single": (SENSOR_INPUTS,)}
START_MARGIN_S = 0.5  # between the go signal and the first trigger, so that every driver is waiting for it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or exported planner .onnx (default: the tiny config "
                                        "exported with random weights)")
    parser.add_argument("--config", default="tiny", help="model config")
    parser.add_argument("--rate", type=float, default=45.0, help="sensor publishing rate [Hz]")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds streamed before measuring")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads of the node")
    parser.add_argument("--points", type=int, default=100_000, help="LiDAR points per sweep")
    parser.add_argument("--camera-size", default="1920x1080", help="WIDTHxHEIGHT of each camera image")
    parser.add_argument("--drivers", choices=sorted(DRIVER_LAYOUTS), default="per-sensor",
                        help="one publishing process per sensor stream, or one for all of them")
    parser.add_argument("--driver-publish", choices=("rcl", "rclpy"), default="rcl",
                        help="drivers publish from a reused buffer through rcl (as C++ drivers do) or rclpy bytes")
    parser.add_argument("--no-profile", action="store_true",
                        help="do not use the Fast DDS profile config/fastdds.xml")
    parser.add_argument("--domain", type=int, default=150 + os.getpid() % 50, help="ROS_DOMAIN_ID of the run")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--driver-inputs", help=argparse.SUPPRESS)  # internal: run as the driver of these inputs
    return parser.parse_args(argv)


def dds_environment(args: argparse.Namespace) -> dict[str, str]:
    env = {"ROS_DOMAIN_ID": str(args.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
    if not args.no_profile:
        from diffusiondrive_ros.nodes.launch_spec import node_environment

        env.update(node_environment({}))
    return env


def export_tiny(config_name: str, folder: Path) -> Path:
    from diffusiondrive_ros.model import load_config
    from diffusiondrive_ros.model.diffusiondrive import build_model
    from diffusiondrive_ros.runtime.export import export_onnx

    config = load_config(config_name)
    path = folder / f"{config_name}.onnx"
    export_onnx(build_model(config, seed=0).eval(), config, path)
    return path


def serialized_frame(config, size: tuple[int, int], points: int, names: tuple[str, ...] = SENSOR_INPUTS
                     ) -> dict[str, bytes]:
    """Short input name -> CDR bytes of the ``names`` messages of one full-size frame (stamp rewritten per publish)."""
    from rclpy.serialization import serialize_message

    from diffusiondrive_ros.data.synthetic import synthetic_frame
    from diffusiondrive_ros.nodes import bags

    config = config.with_source_camera_size(size)
    rng = np.random.default_rng(0)
    frame = synthetic_frame(config, rng)
    cloud = np.column_stack([rng.uniform(-50, 50, points), rng.uniform(-50, 50, points), rng.uniform(-2, 3, points)])
    frame.lidar_points = cloud.astype(np.float32)
    return {name: serialize_message(msg) for name, msg in bags.frame_messages(frame, 1.0).items() if name in names}


class Restamper:
    """Rewrites the header stamp of one pre-serialized message in place (``buffer``, a fixed bytearray)."""

    def __init__(self, data: bytes) -> None:
        self.buffer = bytearray(data)
        self.restamp(0)  # validates the encapsulation and size

    def restamp(self, stamp_ns: int) -> None:
        from diffusiondrive_ros.nodes import bags

        bags.write_stamp(self.buffer, stamp_ns)

    def __call__(self, stamp_ns: int) -> bytes:
        """The restamped message as the ``bytes`` rclpy publishes: one copy."""
        self.restamp(stamp_ns)
        return bytes(self.buffer)


class _RcutilsAllocator(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("allocate", "deallocate", "reallocate", "zero_allocate", "state")]


class _RclSerializedMessage(ctypes.Structure):  # rcl_serialized_message_t = rcutils_uint8_array_t
    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_length", ctypes.c_size_t), ("buffer_capacity", ctypes.c_size_t),
                ("allocator", _RcutilsAllocator)]


def _librcl() -> ctypes.CDLL:
    import rclpy

    wheel_library = Path(rclpy.__file__).resolve().parents[3] / "librcl.so"  # lib/ next to site-packages
    rcl = ctypes.CDLL(str(wheel_library) if wheel_library.exists() else "librcl.so")
    rcl.rcl_publish_serialized_message.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    rcl.rcl_publish_serialized_message.restype = ctypes.c_int
    return rcl


class RclPublisher:
    """Publishes a restamped message from its buffer through ``rcl_publish_serialized_message`` (ctypes).

    What a C++ driver does with a reused buffer. rclpy's ``publish(bytes)`` costs two more full copies per message
    (a fresh ``bytes`` per stamp, then pybind11's ``std::string``). ctypes releases the GIL during the call.
    """

    def __init__(self, publisher, restamper: Restamper, rcl: ctypes.CDLL) -> None:
        self._publisher, self._restamper, self._rcl = publisher, restamper, rcl
        size = len(restamper.buffer)
        address = ctypes.addressof((ctypes.c_char * size).from_buffer(restamper.buffer))  # never resized
        self._message = _RclSerializedMessage(buffer=address, buffer_length=size, buffer_capacity=size)

    def publish(self, stamp_ns: int) -> None:
        self._restamper.restamp(stamp_ns)
        ret = self._rcl.rcl_publish_serialized_message(self._publisher.handle.pointer, ctypes.byref(self._message),
                                                       None)
        if ret != 0:
            raise RuntimeError(f"rcl_publish_serialized_message returned {ret}")


def process_counters(pid: int) -> tuple[float, int]:
    """User + system CPU seconds and minor page faults of a process (all threads) from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()  # fields[0] is field 3, state
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "n": len(values)}


def _type_of(name: str) -> str:
    return {"lidar": "sensor_msgs/msg/PointCloud2", "odometry": "nav_msgs/msg/Odometry"}.get(
        name, "sensor_msgs/msg/Image")


def _sleep_until(wall_s: float) -> None:
    while (left := wall_s - time.time()) > 0:
        time.sleep(min(left, 0.5))


# -- a driver process -------------------------------------------------------------------------------------------
def run_driver(args: argparse.Namespace) -> dict:
    """Publish ``args.driver_inputs`` at the trigger times the parent sends; report publish times and CPU use.

    Protocol on stdin/stdout: the driver prints ``ready`` once the node's subscriptions matched its publishers,
    then reads ``START_WALL_S FRAMES MEASURE_FROM_FRAME`` and prints one JSON line when done.
    """
    os.environ.update(dds_environment(args))  # before rclpy loads Fast DDS in this process
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from diffusiondrive_ros.model import load_config
    from diffusiondrive_ros.nodes import bags

    names = tuple(args.driver_inputs.split(","))
    frame = serialized_frame(load_config(args.config), bags.parse_size(args.camera_size), args.points, names)
    topics = bags.node_topics()
    rclpy.init()
    node = rclpy.create_node(f"bench_driver_{os.getpid()}")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    publishers = {name: node.create_publisher(bags.message_class(_type_of(name)), topics[name], qos)
                  for name in names}
    if args.driver_publish == "rcl":
        rcl = _librcl()
        publish = {name: RclPublisher(publishers[name], Restamper(frame[name]), rcl).publish for name in names}
    else:
        restampers = {name: Restamper(frame[name]) for name in names}
        publish = {name: (lambda stamp_ns, p=publishers[name], r=restampers[name]: p.publish(r(stamp_ns)))
                   for name in names}
    try:
        deadline = time.monotonic() + 180.0
        while not all(p.get_subscription_count() for p in publishers.values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"driver of {names}: the node never subscribed")
            time.sleep(0.05)
        print("ready", flush=True)
        start_s, frames, measure_from = sys.stdin.readline().split()
        start_s, frames, measure_from = float(start_s), int(frames), int(measure_from)
        publish_ms: dict[str, list[float]] = {name: [] for name in names}
        late_ms: list[float] = []
        counters: dict[str, float] = {}
        for k in range(frames):
            trigger_s = start_s + k / args.rate
            if k == measure_from:
                counters["cpu_start"], counters["faults_start"] = process_counters(os.getpid())
            _sleep_until(trigger_s)
            stamp_ns = round(trigger_s * 1e9)
            if k >= measure_from:
                late_ms.append((time.time() - trigger_s) * 1e3)
            for name in names:
                t0 = time.perf_counter()
                publish[name](stamp_ns)
                if k >= measure_from:
                    publish_ms[name].append((time.perf_counter() - t0) * 1e3)
        cpu_end, faults_end = process_counters(os.getpid())
        measured = max(1, frames - measure_from)
        return {"inputs": names, "publish_ms": {name: percentiles(v) for name, v in publish_ms.items()},
                "late_ms": percentiles(late_ms),
                "cpu_s": cpu_end - counters["cpu_start"],
                "faults_per_frame": (faults_end - counters["faults_start"]) / measured}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def start_drivers(args: argparse.Namespace, workdir: Path) -> list[subprocess.Popen]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--config", args.config, "--rate", str(args.rate),
            "--points", str(args.points), "--camera-size", args.camera_size, "--domain", str(args.domain),
            "--driver-publish", args.driver_publish]
    if args.no_profile:
        argv.append("--no-profile")
    drivers = []
    for k, inputs in enumerate(DRIVER_LAYOUTS[args.drivers]):
        log = open(workdir / f"driver_{k}.log", "w")  # noqa: SIM115 - closed with the process in stop_process
        drivers.append(subprocess.Popen([*argv, "--driver-inputs", ",".join(inputs)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1")))
    return drivers


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


# -- the listening process --------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    os.environ.update(dds_environment(args))  # before rclpy loads Fast DDS in this process
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path as PathMsg
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.subscription import MessageInfo

    from diffusiondrive_ros.nodes import bags
    from diffusiondrive_ros.nodes.converters import stamp_to_seconds
    from diffusiondrive_ros.nodes.launch_spec import NodeLaunch
    from diffusiondrive_ros.nodes.topics import DIAGNOSTICS_TOPIC

    workdir = Path(tempfile.mkdtemp(prefix="bench_node_"))
    onnx = Path(args.model) if args.model else export_tiny(args.config, workdir)
    launch = NodeLaunch(overrides={
        "backend": "onnxruntime", "model_path": str(onnx), "model_config": args.config, "autostart": True,
        "rate_hz": args.rate, "diagnostics_period_s": 0.5,
        "backend_options": f"{{providers: [CPUExecutionProvider], intra_op_threads: {args.threads}}}"})
    log_path = workdir / "node.log"
    with open(log_path, "w") as log:
        node_process = subprocess.Popen(launch.command(), env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log,
                                        stderr=subprocess.STDOUT, cwd=REPO)
    drivers = start_drivers(args, workdir)
    rclpy.init()
    node = rclpy.create_node(f"bench_node_{os.getpid()}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    lock = threading.Lock()
    received: list[tuple[float, float, float]] = []  # (DDS reception time, Python callback time, Path stamp)
    diagnostics: list[tuple[float, dict[str, str]]] = []

    def on_path(msg: PathMsg, info: MessageInfo) -> None:
        now = time.time()  # Fast DDS stamps the reception in its own thread, before this callback waits for the GIL
        with lock:
            received.append((info["received_timestamp"] * 1e-9, now, stamp_to_seconds(msg.header.stamp)))

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"/{launch.node_name}:"):
                with lock:
                    diagnostics.append((time.time(), {kv.key: kv.value for kv in status.values}))

    node.create_subscription(PathMsg, bags.node_topics()["trajectory"], on_path,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, on_diagnostics, 10)
    try:
        deadline = time.monotonic() + 180.0
        for driver in drivers:
            if driver.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a driver failed:\n{(workdir / 'driver_0.log').read_text()[-3000:]}")
        while not diagnostics:
            if node_process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        time.sleep(1.0)  # asymmetric discovery: let the node's readers match the drivers' writers too
        start = time.time() + START_MARGIN_S
        measure_from = round(args.warmup * args.rate)
        frames = measure_from + round(args.duration * args.rate)
        for driver in drivers:
            driver.stdin.write(f"{start!r} {frames} {measure_from}\n")
            driver.stdin.flush()
        measure_wall = start + measure_from / args.rate
        end_wall = start + frames / args.rate
        _sleep_until(measure_wall)
        node_cpu_start, node_faults_start = process_counters(node_process.pid)
        _sleep_until(end_wall)
        node_cpu_end, node_faults_end = process_counters(node_process.pid)
        reports = [json.loads(driver.stdout.readline()) for driver in drivers]
        time.sleep(1.0)  # the last plans
    finally:
        for process in (*drivers, node_process):
            stop_process(process)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    with lock:
        window = [(t, callback, s) for t, callback, s in received if measure_wall - 1e-6 <= s < end_wall]
        # the node's view while it was still fed: diagnostics received after the stream stopped report stale inputs
        fed = [d for t, d in diagnostics if t <= end_wall]
        last_diag = fed[-1] if fed else {}
    measured_frames = frames - measure_from
    e2e = percentiles([(t - s) * 1e3 for t, _, s in window])
    infer = {k: float(last_diag.get(f"stage_ms.infer.{k}", "nan")) for k in ("p50", "p99")}
    node_stages = {key[len("stage_ms.node."):-len(".p50")]: {k: float(last_diag[f"{key[:-4]}.{k}"])
                                                              for k in ("p50", "p99")}
                   for key in last_diag if key.startswith("stage_ms.node.") and key.endswith(".p50")}
    wall = end_wall - measure_wall
    return {
        "config": args.config, "sensor_rate_hz": args.rate, "camera_size": args.camera_size, "points": args.points,
        "threads": args.threads, "drivers": args.drivers, "driver_publish": args.driver_publish,
        "fastdds_profile": not args.no_profile,
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "frames_planned_in_window": len(window), "frames_in_window": measured_frames,
        "output_rate_hz": len(window) / args.duration,
        "e2e_ms": e2e,
        "e2e_callback_ms": percentiles([(callback - s) * 1e3 for _, callback, s in window]),
        "model_infer_ms": infer,
        "planner_plan_ms": {k: float(last_diag.get(f"stage_ms.total.{k}", "nan")) for k in ("p50", "p99")},
        "overhead_ms": {k: e2e[k] - infer[k] for k in ("p50", "p99")},
        "publish_ms": {name: stats for report in reports for name, stats in report["publish_ms"].items()},
        "driver_late_ms": max((report["late_ms"] for report in reports), key=lambda late: late["p50"]),
        "node_stage_ms": node_stages,
        "cpu_cores": {"drivers": sum(report["cpu_s"] for report in reports) / wall,
                      "node": (node_cpu_end - node_cpu_start) / wall},
        "page_faults_per_frame": {"drivers": sum(report["faults_per_frame"] for report in reports),
                                  "node": (node_faults_end - node_faults_start) / measured_frames},
        "node_diagnostics": last_diag,
    }


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"planner node, {result['config']} on ONNX Runtime CPU ({result['threads']} threads), "
                        f"{result['sensor_rate_hz']:g} Hz of {result['camera_size']} x3 + {result['points']} points, "
                        f"drivers {result['drivers']} ({result['driver_publish']})")
    table.add_column("metric")
    table.add_column("p50 [ms]", justify="right")
    table.add_column("p99 [ms]", justify="right")
    rows = [("end-to-end (trigger stamp -> Path received by DDS)", result["e2e_ms"]),
            ("  ... -> Path callback in this process", result["e2e_callback_ms"]),
            ("model only (planner.infer, in the node)", result["model_infer_ms"]),
            ("planner.plan (preprocess + infer + postprocess)", result["planner_plan_ms"]),
            ("node overhead (end-to-end - model)", result["overhead_ms"]),
            ("drivers: wake-up after the trigger time (latest driver)", result["driver_late_ms"])]
    rows += [(f"driver: publish call, {name}", stats) for name, stats in result["publish_ms"].items()]
    rows += [(f"in the node: {stage}", stats)
             for stage, stats in sorted(result["node_stage_ms"].items())]
    for label, values in rows:
        table.add_row(label, f"{values['p50']:.1f}", f"{values['p99']:.1f}")
    console = Console()
    console.print(table)
    cores, faults = result["cpu_cores"], result["page_faults_per_frame"]
    console.print(f"output rate {result['output_rate_hz']:.1f} Hz ({result['frames_planned_in_window']} of "
                  f"{result['frames_in_window']} frames planned); {result['cpu_count']} CPUs, load average "
                  f"{result['load_average'][0]:.1f}; CPU cores used: drivers {cores['drivers']:.2f}, node "
                  f"{cores['node']:.2f}; minor page faults per frame: drivers {faults['drivers']:.0f}, node "
                  f"{faults['node']:.0f}; frames the node received but superseded "
                  f"{result['node_diagnostics'].get('dropped_frames')}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.driver_inputs:
        print(json.dumps(run_driver(args)), flush=True)
        return 0
    result = run(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
