"""The DiffusionDrive planner as an rclpy lifecycle node.

configure loads and warms up the planner, activate starts a planning thread that plans each new time-synchronised
set of cameras, LiDAR and odometry as soon as it is complete (at most ``rate_hz`` times per second), deactivate stops
it, cleanup releases the planner. Subscription callbacks only convert and store messages; every problem with an input
is counted and warned about (throttled), never raised.

Why it is built this way (measured with bench/bench_node.py, full-size streams at 45 Hz on 2 cores): images and
clouds arrive as serialized bytes (``raw=True``) read in place by :mod:`.cdr`; sensor queues hold one message so a
busy node never works through old frames; the callbacks run on a single-threaded executor while inference runs in its
own thread (ONNX Runtime releases the GIL), started by the callback that completes an input set instead of by a
timer that waits up to a period for its next tick. (rclpy's experimental EventsExecutor spun a core while idle and
ignored SIGINT/SIGTERM here, so it is not used.)

No single message can stop planning for longer than the frame it arrives in: stamps are checked against the node's
clock before anything is stored (:func:`.sync.checked_stamp`), odometry and LiDAR points against physical bounds
(:mod:`.plausibility`), and every message that is not planned from is counted under a reason. The model is loaded
in a cancellable job (:mod:`.cancellable`) and the process handles SIGINT/SIGTERM itself, so a shutdown request
during a long configure ends the node within about a second.

    python -m diffusiondrive_ros.nodes.planner_node --ros-args --params-file config/planner.yaml -p autostart:=true
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32MultiArray, Int32, UInt8
from visualization_msgs.msg import MarkerArray

from ..contract import DRIVING_COMMANDS
from ..files import file_sha256
from ..model.config import CameraConfig, ModelConfig, load_config
from ..runtime.model_dir import CONFIG_NAME, is_model_dir, model_fingerprint, not_a_model_dir_message
from ..runtime.planner import Planner
from ..runtime.postprocess import NonFiniteOutputError
from ..runtime.preprocess import camera_layout
from ..runtime.types import SensorFrame
from . import cdr, converters
from .cancellable import Cancelled, abandoned_jobs, run_cancellable
from .memory import LargeInputTrimmer
from .params import (
    NODE_NAME,
    NodeParams,
    ParameterError,
    command_line_overrides,
    declarations,
    override_type_errors,
    params_from_values,
)
from .plan_messages import candidates_to_array, candidates_to_markers
from .plausibility import Bounds, check_twist, filter_points
from .stats import NodeStats, PublicationGaps, recent_problems
from .sync import AccelerationEstimator, InputStore, Selection, checked_stamp
from .topics import CAMERA_INPUTS, DIAGNOSTICS_TOPIC, INPUT_TOPICS, OUTPUT_TOPICS, SENSOR_INPUTS
from .trigger import NewInputWorker

WARN_THROTTLE_S = 2.0
ENGINE_CACHE_OPTION = {"tensorrt": "cache_dir", "onnxruntime": "trt_engine_cache_dir"}  # make_planner option names
SPIN_POLL_S = 0.1  # how often the executor loop looks at the stop flag set by SIGINT/SIGTERM


def load_custom_planner(params: NodeParams, config: ModelConfig) -> Planner:
    """``package.module:Class(config, seed=..., **options)``: the non-empty ``model_path``, ``device`` and
    ``engine_cache_dir`` parameters and the ``backend_options`` mapping go to the constructor as keywords."""
    module_name, _, class_name = params.backend.partition(":")
    planner_class = getattr(importlib.import_module(module_name), class_name)
    options: dict[str, Any] = dict(params.backend_option_dict())
    for name in ("model_path", "device", "engine_cache_dir"):
        if getattr(params, name):
            options[name] = getattr(params, name)
    try:
        return planner_class(config, seed=params.seed, **options)
    except TypeError as err:  # most likely an option the class does not take: say which were passed
        raise ParameterError(f"backend {params.backend} rejected its options {sorted(options)}: {err}") from err


def load_planner(params: NodeParams, config: ModelConfig) -> Planner:
    """A built-in backend through ``runtime.backends.make_planner``, or a custom class (:func:`load_custom_planner`)."""
    if ":" in params.backend:
        return load_custom_planner(params, config)
    from ..runtime.backends import make_planner

    options: dict[str, Any] = dict(params.backend_option_dict())
    if params.device:
        if params.backend != "torch":
            raise ParameterError(f"parameter 'device' applies to the torch backend only (backend {params.backend!r})")
        options["device"] = params.device
    if params.engine_cache_dir:
        if params.backend not in ENGINE_CACHE_OPTION:
            raise ParameterError(f"parameter 'engine_cache_dir' does not apply to the {params.backend} backend")
        options[ENGINE_CACHE_OPTION[params.backend]] = params.engine_cache_dir
    return make_planner(config, params.backend, params.model_path or None, seed=params.seed, **options)


class ConfigureError(Exception):
    """A configure step failed; the message names the step (file, config, warm-up) and the original error."""


@contextlib.contextmanager
def configure_step(what: str) -> Iterator[None]:
    """Turn any error inside into a :class:`ConfigureError` that says which step failed and why.

    Why: rclpy's lifecycle swallows an exception from on_configure and logs only "error in state unconfigured", so
    ONNX Runtime, YAML or safetensors errors used to leave no reason in the log.
    """
    try:
        yield
    except (Cancelled, ConfigureError):
        raise
    except Exception as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())  # one log line (YAML)
        raise ConfigureError(f"{what}: {type(err).__name__}: {detail}") from err


@dataclass
class LoadedModel:
    planner: Planner
    identity: dict[str, str]  # model_path, model_config, model_sha256: reported on /diagnostics


def model_identity(model_path: str, planner: Planner) -> dict[str, str]:
    """What runs: the model path, the config the planner really uses (a model directory brings its own) and a
    content hash (runtime.model_dir.model_fingerprint for a directory, the file's sha256 otherwise; empty for the
    torch backend's seeded random weights)."""
    if not model_path:
        digest = ""
    elif os.path.isdir(model_path):
        digest = model_fingerprint(model_path)
    else:
        digest = file_sha256(model_path)
    return {"model_path": os.path.abspath(model_path) if model_path else "",
            "model_config": planner.config.name, "model_sha256": digest}


def load_model(params: NodeParams, cancel: threading.Event) -> LoadedModel:
    """Config, planner, identity and warm-up plans: the slow part of configure, run by :func:`run_cancellable`.

    Each step's failure is a :class:`ConfigureError` naming the step; ``cancel`` is checked between steps.
    """
    path = params.model_path
    builtin = ":" not in params.backend
    model_dir = builtin and bool(path) and os.path.isdir(path)
    if model_dir and not is_model_dir(path):
        raise ConfigureError(f"model_path: {not_a_model_dir_message(path)}")
    config_source = os.path.join(path, CONFIG_NAME) if model_dir else params.model_config
    with configure_step(f"model config {config_source}"):
        config = load_config(config_source)
    with configure_step(f"{params.backend} planner from {path or 'the backend default'}"):
        planner = load_planner(params, config)
    try:
        with configure_step(f"hashing the model {path}"):
            identity = model_identity(path, planner)
        for k in range(params.warmup_runs):
            if cancel.is_set():
                raise Cancelled("configure cancelled during warm-up")
            with configure_step(f"warm-up plan {k + 1}/{params.warmup_runs} on a blank frame"):
                planner.plan(blank_frame(planner.config))
        if cancel.is_set():
            raise Cancelled("configure cancelled")
    except BaseException:
        planner.close()
        raise
    return LoadedModel(planner, identity)


@functools.lru_cache(maxsize=16)
def camera_size_problem(height: int, width: int, camera: CameraConfig) -> str:
    """Why images of this size cannot feed the model's camera crops ('' if they can); cached per size."""
    try:
        camera_layout(height, width, camera)
    except ValueError as err:
        return str(err)
    return ""


def blank_frame(config: ModelConfig) -> SensorFrame:
    """A grey frame at the config's source camera size, for warm-up runs."""
    shape = (config.camera.source_height, config.camera.source_width, 3)
    cameras = tuple(np.full(shape, 128, np.uint8) for _ in CAMERA_INPUTS)
    points = np.array([[10.0, 0.0, 1.0], [20.0, 5.0, 1.0]], np.float32)
    return SensorFrame(cameras=cameras, lidar_points=points, command=DRIVING_COMMANDS.index("unknown"))


class WarnThrottle:
    """Logs a warning per key at most once every ``period_s`` seconds."""

    def __init__(self, log: Callable[[str], Any], period_s: float = WARN_THROTTLE_S) -> None:
        self._log = log
        self._period = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -np.inf) < self._period:
                return
            self._last[key] = now
        self._log(message)


class PlannerNode(LifecycleNode):
    """Lifecycle node ``diffusiondrive_planner``; see the module docstring and config/planner.yaml.

    ``argv`` is the process's command line, read for ``-p`` overrides of the wrong type (see
    :func:`.params.command_line_overrides`); ``stop_requested`` is set by :func:`main`'s signal handlers and
    interrupts a configure in progress.
    """

    def __init__(self, node_name: str = NODE_NAME, argv: Sequence[str] | None = None,
                 stop_requested: threading.Event | None = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, default, doc in declarations():
            self.declare_parameter(name, default, ParameterDescriptor(description=doc, dynamic_typing=True))
        names = (self.get_name(), self.get_fully_qualified_name(), self.get_fully_qualified_name().lstrip("/"))
        self._override_errors = override_type_errors(
            command_line_overrides(sys.argv if argv is None else argv, names))
        self._declared = {name: self.get_parameter(name).value for name in self._override_errors}
        self._stop = stop_requested or threading.Event()
        self.stats = NodeStats()
        self.store = InputStore(SENSOR_INPUTS)
        self.params: NodeParams | None = None
        self.planner: Planner | None = None
        self.model_identity: dict[str, str] = {}
        self._bounds = Bounds()
        self._accel = AccelerationEstimator()
        self._odometry_lock = threading.Lock()
        self._active = threading.Event()
        self._command = DRIVING_COMMANDS.index("unknown")
        self._entities: list[tuple[Callable[[Any], Any], Any]] = []  # (destroy function, entity) made at configure
        self._worker: NewInputWorker | None = None
        self._reported_counters: dict[str, int] = {}  # NodeStats.counters() at the last diagnostics message
        self._reported_plans = 0
        self._last_input_s = 0.0  # time.monotonic() of the newest stored input: when the planning thread was woken
        self._gaps = {name: PublicationGaps() for name in (*SENSOR_INPUTS, "command")}
        self._trimmer = LargeInputTrimmer()  # returns the heap after oversized images (nodes/memory.py)
        self._warn = WarnThrottle(self.get_logger().warning)

    # -- parameters -----------------------------------------------------------------------------------------------
    def read_params(self) -> NodeParams:
        values = {name: self.get_parameter(name).value for name, _, _ in declarations()}
        # A wrong-typed -p override that rcl dropped in favour of a params file: still an error, unless the
        # parameter was set again since (e.g. through the set_parameters service).
        errors = [message for name, message in self._override_errors.items() if values[name] == self._declared[name]]
        if errors:
            raise ParameterError("; ".join(errors))
        return params_from_values(values)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stop_requested(self) -> bool:
        return self._stop.is_set() or not self.context.ok()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            params = self.read_params()
        except ParameterError as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configuring: {params.backend} planner, model "
                               f"{params.model_path or params.model_config}, {params.warmup_runs} warm-up plan(s)")
        try:
            loaded = run_cancellable(functools.partial(load_model, params), self._stop_requested, name="configure")
        except Cancelled:
            self.get_logger().warning("configure interrupted by a shutdown request")
            return TransitionCallbackReturn.FAILURE
        except Exception as err:  # ConfigureError names the step; anything else still says what it was
            message = str(err) if isinstance(err, ConfigureError) else f"{type(err).__name__}: {err}"
            self.get_logger().error(f"configure failed: {message}")
            return TransitionCallbackReturn.FAILURE
        planner = loaded.planner
        self.params, self.planner, self.model_identity = params, planner, loaded.identity
        self._command = DRIVING_COMMANDS.index(params.command)
        self._bounds = Bounds(params.max_speed_mps, params.max_yaw_rate_radps, params.max_point_range_m)
        self._accel = AccelerationEstimator(alpha=params.accel_filter_alpha, max_accel=params.max_accel_mps2)
        self.store = InputStore(SENSOR_INPUTS, stale_after_s=params.stale_after_s,
                                tolerance_s=params.sync_tolerance_s,
                                on_unused=lambda name, reason: self.stats.count(f"unused.{name}:{reason}"),
                                on_used=lambda name: self.stats.count(f"used.{name}"),
                                on_expired_frame=self.stats.record_dropped)
        self._create_interfaces(params)
        identity = self.model_identity
        self.get_logger().info(
            f"configured: backend {planner.backend_name} on {planner.providers}, model {identity['model_config']} "
            f"from {identity['model_path'] or 'the backend default'}"
            f"{' (sha256 ' + identity['model_sha256'][:12] + ')' if identity['model_sha256'] else ''}, "
            f"{params.rate_hz:g} Hz, camera transport {params.camera_transport}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.params is not None
        self.store.clear()
        self._accel.reset()
        self._worker = NewInputWorker(self._plan_newest, self.params.rate_hz, self._on_planning_error,
                                      name="planner")
        self._active.set()
        self._worker.start()
        self.get_logger().info("active: planning")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_planning()
        self.store.clear()  # what was not planned from is counted as unused now, not at the next activate
        self.get_logger().info("inactive: planning stopped")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}: releasing the planner")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_planning(self) -> None:
        self._active.clear()
        if self._worker is not None:
            self._worker.stop()  # waits for a plan in flight
            self._worker = None

    def _release(self) -> None:
        self._stop_planning()
        for destroy, entity in reversed(self._entities):
            destroy(entity)
        self._entities.clear()
        if self.planner is not None:
            self.planner.close()
            self.planner = None
        self.model_identity = {}
        self.store.clear()

    def shutdown_cleanly(self) -> None:
        """Take the lifecycle to finalized (stopping planning, releasing the planner) unless it is there already."""
        with contextlib.suppress(Exception):
            if self._state_machine.current_state[1] != "finalized":
                self.trigger_shutdown()

    # -- interfaces -----------------------------------------------------------------------------------------------
    def _create_interfaces(self, params: NodeParams) -> None:
        # Best effort inputs accept any publisher and keep only the newest message; reliable outputs suit planners'
        # consumers.
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.sensor_qos_depth,
                                reliability=ReliabilityPolicy.BEST_EFFORT)
        output_qos = QoSProfile(depth=params.qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        for name in CAMERA_INPUTS:
            if params.camera_transport == "raw":  # megabytes: read the serialized bytes in place
                callback = self._store_callback(name, cdr.parse_image, self._camera_reader(converters.image_to_rgb))
                self._subscribe(Image, name, callback, sensor_qos)
            else:
                callback = self._store_callback(name, self._deserializer(CompressedImage),
                                                self._camera_reader(converters.compressed_image_to_rgb))
                self._subscribe(CompressedImage, name, callback, sensor_qos)
        cloud_callback = self._store_callback("lidar", cdr.parse_point_cloud2, self._read_cloud)
        self._subscribe(PointCloud2, "lidar", cloud_callback, sensor_qos)
        self._subscribe(Odometry, "odometry", self._on_odometry, sensor_qos)
        # The command is a rare event: reliable (a best-effort publisher would not match).
        self._command_type = UInt8 if params.command_type == "uint8" else Int32
        self._subscribe(self._command_type, "command", self._on_command, output_qos)
        self._trajectory_pub = self._lifecycle_publisher(Path, "trajectory", output_qos)
        self._markers_pub = self._lifecycle_publisher(MarkerArray, "candidates", output_qos)
        self._raw_pub = self._lifecycle_publisher(Float32MultiArray, "candidates_raw", output_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._entities.append((self.destroy_publisher, self._diagnostics_pub))
        timer = self.create_timer(params.diagnostics_period_s, self._publish_diagnostics)
        self._entities.append((self.destroy_timer, timer))

    def _subscribe(self, msg_type: type, name: str, callback: Callable[[Any, MessageInfo], None],
                   qos: QoSProfile) -> None:
        """A raw subscription (serialized bytes: a message that does not deserialize is counted, not lost inside
        rclpy) that also counts what Fast DDS reports lost in transport (an image too large for the transport)."""
        def on_lost(info: Any) -> None:
            self.stats.count(f"lost.{name}", int(info.total_count_change))
            self._warn(f"lost:{name}", f"Fast DDS lost {info.total_count_change} {name} message(s) in transport "
                                       f"({info.total_count} so far)")

        events = SubscriptionEventCallbacks(message_lost=on_lost)
        subscription = self.create_subscription(msg_type, INPUT_TOPICS[name], callback, qos, raw=True,
                                                event_callbacks=events)
        self._entities.append((self.destroy_subscription, subscription))

    def _lifecycle_publisher(self, msg_type: type, name: str, qos: QoSProfile) -> Any:
        publisher = self.create_lifecycle_publisher(msg_type, OUTPUT_TOPICS[name], qos)
        self._entities.append((self.destroy_lifecycle_publisher, publisher))
        return publisher

    # -- inputs ---------------------------------------------------------------------------------------------------
    def _reject(self, name: str, err: Exception) -> None:
        reason = getattr(err, "reason", None) or ("invalid" if isinstance(err, ValueError) else "error")
        self.stats.record_rejected(name, reason)
        self._warn(f"{name}:{reason}", f"rejected a {name} message ({reason}): {err}")

    def _delivered(self, name: str, info: MessageInfo) -> bool:
        """Count a delivered message and the publisher's messages that never arrived; False while inactive."""
        self.stats.count(f"received.{name}")
        sequence, gid = info.get("publication_sequence_number"), info.get("publisher_gid")
        skipped = self._gaps[name].update(bytes(gid.get("data", b"")), int(sequence)) if sequence and gid else 0
        if skipped:
            self.stats.count(f"unread.{name}", skipped)
        if name != "command" and not self._active.is_set():
            self.stats.count(f"ignored.{name}:inactive")
            return False
        return True

    def _stamp(self, stamp: Any, now: float) -> float:
        assert self.params is not None
        return checked_stamp(stamp.sec, stamp.nanosec, now, self.params.max_stamp_ahead_s)

    @staticmethod
    def _deserializer(msg_type: type) -> Callable[[bytes], Any]:
        def parse(raw: bytes) -> Any:
            try:
                return deserialize_message(raw, msg_type)
            except Exception as err:  # rclpy raises RMWError for bytes that are no such message
                raise converters.MessageError("malformed_cdr", f"{len(raw)} bytes: {err}") from err

        return parse

    def _store_callback(self, name: str, parse: Callable[[bytes], Any],
                        read: Callable[[Any], Any]) -> Callable[[Any, MessageInfo], None]:
        """A subscription callback: ``parse`` the serialized bytes, check the stamp, ``read`` the value, store it."""
        age_stage = f"node.input_age.{name}"

        def callback(raw: bytes, info: MessageInfo) -> None:
            self._trimmer.saw(len(raw), time.monotonic())
            if not self._delivered(name, info):
                return
            self._record_callback_delay(info)
            try:
                msg = parse(raw)
                now = self.now_s()
                stamp = self._stamp(msg.header.stamp, now)
                self.store.admission(name, stamp, now)  # before converting a message that would be rejected
                self.store.put(name, stamp, read(msg), now)
            except Exception as err:  # never out of a callback: count and warn
                self._reject(name, err)
                return
            self.stats.record_stage(age_stage, (now - stamp) * 1e3)
            self._notify_planner()

        return callback

    def _record_callback_delay(self, info: MessageInfo) -> None:
        """From Fast DDS's reception of a sensor message to its callback: the executor's queueing, in one stage."""
        received_ns = info.get("received_timestamp", 0)
        if received_ns > 0:  # 0: the middleware does not report it
            self.stats.record_stage("node.callback_delay", (time.time_ns() - received_ns) * 1e-6)

    def _notify_planner(self) -> None:
        self._last_input_s = time.monotonic()
        worker = self._worker
        if worker is not None:
            worker.notify()

    def _camera_reader(self, to_rgb: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
        """``to_rgb`` plus a size check against the model's camera crops, so that an image the model cannot use is
        rejected as that camera's input (``bad_size``), not discovered as a planner error later."""
        assert self.planner is not None
        camera = self.planner.config.camera

        def read(msg: Any) -> np.ndarray:
            rgb = to_rgb(msg)
            problem = camera_size_problem(rgb.shape[0], rgb.shape[1], camera)
            if problem:
                raise converters.MessageError("bad_size", problem)
            return rgb

        return read

    def _read_cloud(self, msg: PointCloud2) -> np.ndarray:
        filtered = filter_points(converters.cloud_to_xyz(msg, keep_non_finite=True), self._bounds.max_point_range_m)
        if filtered.points.shape[0] == 0:
            if filtered.out_of_range:
                raise converters.MessageError(
                    "implausible_range", f"all {filtered.out_of_range} finite points have a coordinate beyond "
                                         f"max_point_range_m {self._bounds.max_point_range_m:g} m")
            raise converters.MessageError("empty_cloud", "point cloud has no finite points")
        if filtered.non_finite:
            self.stats.count("dropped_points.lidar:non_finite", filtered.non_finite)
        if filtered.out_of_range:
            self.stats.count("dropped_points.lidar:implausible_range", filtered.out_of_range)
        assert self.params is not None
        return converters.sensor_to_ego(filtered.points, self.params.lidar_extrinsic)

    def _on_odometry(self, raw: bytes, info: MessageInfo) -> None:
        if not self._delivered("odometry", info):
            return
        self._record_callback_delay(info)
        try:
            msg = self._deserializer(Odometry)(raw)
            now = self.now_s()
            stamp = self._stamp(msg.header.stamp, now)
            vx, vy, yaw_rate = converters.odometry_to_twist(msg)
            check_twist(vx, vy, yaw_rate, self._bounds)
            with self._odometry_lock:  # the estimator and the store must see the same message order
                if self.store.admission("odometry", stamp, now) != "append":
                    self._accel.reset()  # the stored time line was dropped: so is the estimate's
                ax, ay = self._accel.update(stamp, vx, vy)
                self.store.put("odometry", stamp, (vx, vy, ax, ay), now)
        except Exception as err:
            self._reject("odometry", err)
            return
        self.stats.record_stage("node.input_age.odometry", (now - stamp) * 1e3)
        self._notify_planner()

    def _on_command(self, raw: bytes, info: MessageInfo) -> None:
        self._delivered("command", info)
        try:
            value = int(self._deserializer(self._command_type)(raw).data)
            if not 0 <= value < len(DRIVING_COMMANDS):
                raise converters.MessageError(
                    "out_of_range", f"command {value} not in 0..{len(DRIVING_COMMANDS) - 1} {DRIVING_COMMANDS}")
        except Exception as err:
            self._reject("command", err)
            return
        self.get_logger().debug(f"command {value}")
        self._command = value

    # -- planning (in the worker thread) --------------------------------------------------------------------------
    def _on_planning_error(self, err: BaseException) -> None:
        """A bug in planning must not kill the planning thread: count and warn."""
        self.stats.record_error(non_finite=False)
        self._warn("planning", f"planning failed: {type(err).__name__}: {err}")

    def _plan_newest(self) -> bool:
        """Plan the newest complete input set if there is one; True when it planned (the rate cap counts those)."""
        params, planner = self.params, self.planner
        if params is None or planner is None or not self._active.is_set():
            return False
        selection = self.store.select(self.now_s(), params.sync_tolerance_s, params.stale_after_s)
        if selection.status == "no_new_data":  # a set still filling up: the normal state between frames
            return False
        if selection.status != "ready":
            self.stats.record_skip(selection.status)
            if selection.status in ("missing", "stale"):
                names = ", ".join(selection.missing + selection.stale)
                self._warn("stale", f"not planning: {selection.status} input(s): {names}")
            elif selection.status == "unsynchronised":
                self._warn("sync", f"not planning: input stamps spread {selection.spread_s:.3f} s > "
                                   f"sync_tolerance_s {params.sync_tolerance_s}")
            return False
        if selection.superseded:
            self.stats.record_dropped(selection.superseded)
        frame = self._frame(selection)
        self.stats.record_stage("node.age_at_plan_start", (self.now_s() - frame.stamp) * 1e3)
        self.stats.record_stage("node.wait_after_last_input", (time.monotonic() - self._last_input_s) * 1e3)
        started = time.perf_counter()
        try:
            result = planner.plan(frame)
        except NonFiniteOutputError as err:
            self.stats.record_error(non_finite=True)
            self._warn("non_finite", f"dropped a non-finite plan: {err}")
            return True
        except Exception as err:
            self.stats.record_error(non_finite=False)
            self._warn("planner", f"planner failed: {type(err).__name__}: {err}")
            return True
        if not (np.isfinite(result.trajectory).all() and np.isfinite(result.modes).all()):
            self.stats.record_error(non_finite=True)
            self._warn("non_finite", "dropped a non-finite plan")
            return True
        self._publish(result, frame.stamp, params.frame_id)
        self.stats.record_plan(time.monotonic(), (time.perf_counter() - started) * 1e3, result.latency_ms)
        self.stats.record_stage("node.age_at_publish", (self.now_s() - frame.stamp) * 1e3)
        return True

    def _frame(self, selection: Selection) -> SensorFrame:
        inputs = selection.inputs
        assert inputs is not None
        vx, vy, ax, ay = inputs["odometry"].value
        return SensorFrame(
            cameras=tuple(inputs[name].value for name in CAMERA_INPUTS),
            lidar_points=inputs["lidar"].value,
            velocity=(vx, vy),
            acceleration=(ax, ay),
            command=self._command,
            stamp=selection.stamp,
        )

    def _publish(self, result: Any, stamp: float, frame_id: str) -> None:
        self._trajectory_pub.publish(converters.trajectory_to_path(result.trajectory, result.times, stamp, frame_id))
        if self._markers_pub.get_subscription_count() > 0:
            self._markers_pub.publish(candidates_to_markers(result.modes, result.mode_scores, stamp, frame_id))
        self._raw_pub.publish(candidates_to_array(result.modes, result.mode_scores))

    # -- diagnostics ----------------------------------------------------------------------------------------------
    def diagnostics_status(self) -> DiagnosticStatus:
        """The next report: state, model identity, WARN for missing/stale inputs and for problems since the
        previous report, and a message that names them."""
        params, planner = self.params, self.planner
        active = self._active.is_set()
        values: dict[str, str] = {"state": "active" if active else "inactive"}
        level, message = DiagnosticStatus.OK, "planning" if active else "inactive"
        if planner is not None:
            values["backend"] = planner.backend_name
            values["providers"] = ",".join(planner.providers)
            values.update(self.model_identity)
        counters = self.stats.counters()
        problems = recent_problems(self._reported_counters, counters)
        planned = self.stats.plans - self._reported_plans
        self._reported_counters, self._reported_plans = counters, self.stats.plans
        if params is not None and active:
            missing, stale = self.store.stale_inputs(self.now_s(), params.stale_after_s)
            values["missing_inputs"] = ",".join(missing)
            values["stale_inputs"] = ",".join(stale)
            if missing or stale:
                level = DiagnosticStatus.WARN
                message = "not planning: " + "; ".join(
                    part for part in (f"missing {', '.join(missing)}" if missing else "",
                                      f"stale {', '.join(stale)}" if stale else "") if part)
            elif not planned:
                message = "not planning" if problems else "waiting for new input"
            if problems:
                level = DiagnosticStatus.WARN
                message += f"; since the last report: {'; '.join(problems)}"
        values.update(self.stats.summary(time.monotonic()))
        return DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: planner", message=message,
            hardware_id=values.get("backend", ""),
            values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _publish_diagnostics(self) -> None:
        if self._trimmer.poll(time.monotonic()):
            self.stats.count("heap_trims")
        try:
            array = DiagnosticArray(status=[self.diagnostics_status()])
            array.header.stamp = self.get_clock().now().to_msg()
            self._diagnostics_pub.publish(array)
        except Exception as err:
            self._warn("diagnostics", f"diagnostics failed: {type(err).__name__}: {err}")


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set ``stop`` (the node then finishes what it does and shuts down through its lifecycle); a
    second signal terminates at once.

    Why not rclpy's own handlers: they shut the context down under a running configure, whose transition then
    fails ("Failed to complete transition ... errorprocessing") and whose log lines cannot be published any more.
    """
    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)


def main(args: list[str] | None = None) -> None:
    """Spin the node (unconfigured, unless the ``autostart`` parameter is true); planning runs in its own thread."""
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    install_stop_handlers(stop)
    node = PlannerNode(argv=sys.argv if args is None else args, stop_requested=stop)
    executor = SingleThreadedExecutor()  # callbacks, services, diagnostics; planning runs in its own thread
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value is True:
            node.trigger_configure()
            if node.params is not None and not stop.is_set():
                node.trigger_activate()
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_POLL_S)  # the timeout bounds how late a signal is noticed
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if stop.is_set():
            node.get_logger().info("shutdown requested: stopping")
        node.shutdown_cleanly()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if abandoned_jobs():  # a cancelled model load still inside one native call: do not wait for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
