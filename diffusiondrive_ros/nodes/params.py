"""The planner node's parameters, described once: type, default, description and check of each.

:class:`NodeParams` is the single table; the node derives its ROS declarations from it (:func:`declarations`) and
validates what it reads with :func:`params_from_values`, which raises :class:`ParameterError` naming the parameter.
config/planner.yaml mirrors the defaults (a test checks they agree).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..contract import DRIVING_COMMANDS

NODE_NAME = "diffusiondrive_planner"
BUILTIN_BACKENDS = ("torch", "onnxruntime", "tensorrt")
CAMERA_TRANSPORTS = ("raw", "compressed")
COMMAND_TYPES = ("uint8", "int32")


class ParameterError(ValueError):
    """A node parameter with a wrong type or value."""


def _param(default: Any, doc: str, check: Callable[[Any], str | None] | None = None,
           choices: tuple | None = None) -> Any:
    """A NodeParams field carrying its description and validation; ``check`` returns an error text or None."""
    meta = {"doc": doc, "check": check, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _check_backend(value: str) -> str | None:
    if value in BUILTIN_BACKENDS:
        return None
    module, sep, attr = value.partition(":")
    if sep and module and attr:
        return None
    return f"unknown backend; expected one of {list(BUILTIN_BACKENDS)} or 'package.module:PlannerClass'"


def _check_existing_file(value: str) -> str | None:
    return None if not value or os.path.exists(value) else "file does not exist"


def _parse_options(value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ParameterError(f"not valid YAML: {err}") from err
    if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
        raise ParameterError(f"expected a YAML mapping of option names to values, got {parsed!r}")
    return parsed


def _check_options(value: str) -> str | None:
    try:
        _parse_options(value)
    except ParameterError as err:
        return str(err)
    return None


def _check_extrinsic(value: list[float]) -> str | None:
    return None if len(value) == 6 else f"needs 6 values x, y, z, roll, pitch, yaw (got {len(value)})"


@dataclass(frozen=True)
class NodeParams:
    backend: str = _param("torch", "planner backend: torch | onnxruntime | tensorrt | package.module:PlannerClass",
                          _check_backend)
    model_config: str = _param("tiny", "model config name (config/models/<name>.yaml) or a YAML path")
    model_path: str = _param("", "model directory (its model.yaml replaces model_config), weights (.safetensors), ONNX "
                             "file or engine; empty: backend default",
                             _check_existing_file)
    engine_cache_dir: str = _param("", "TensorRT engine cache folder; empty: backend default")
    device: str = _param("", "torch device (cpu, cuda, cuda:0); empty: backend default")
    backend_options: str = _param("", "more keyword options of the backend as a YAML mapping, e.g. "
                                  "'{precision: bf16, num_threads: 2}'", _check_options)
    seed: int = _param(0, "seed of the diffusion start noise", _non_negative)
    warmup_runs: int = _param(1, "plans on a blank frame at configure time (JIT, allocator, engine build)",
                              _non_negative)
    rate_hz: float = _param(45.0, "maximum planning rate: each new synchronised input set is planned as it "
                            "completes, at most this often; sets that arrive while a plan runs are superseded",
                            lambda v: None if 0 < v <= 1000 else "must be in (0, 1000]")
    sync_tolerance_s: float = _param(0.05, "max spread of the stamps of one input set (cameras, lidar, odometry)",
                                     _non_negative)
    stale_after_s: float = _param(0.5, "inputs older than this (node clock) stop planning", _positive)
    camera_transport: str = _param("raw", "raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage",
                                   choices=CAMERA_TRANSPORTS)
    lidar_extrinsic: list[float] = _param([0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                                          "lidar pose in frame_id: x, y, z [m], roll, pitch, yaw [rad]",
                                          _check_extrinsic)
    frame_id: str = _param("base_link", "frame of the published trajectory (the ego frame)",
                           lambda v: None if v else "must not be empty")
    command: str = _param("unknown", "driving command used until one arrives on ~/input/command",
                          choices=DRIVING_COMMANDS)
    command_type: str = _param("uint8", "message type of ~/input/command: std_msgs/UInt8 or std_msgs/Int32",
                               choices=COMMAND_TYPES)
    qos_depth: int = _param(5, "queue depth of the command subscription and of the publishers",
                            lambda v: None if v >= 1 else "must be >= 1")
    sensor_qos_depth: int = _param(1, "queue depth of the best-effort sensor subscriptions (1: only the newest "
                                   "message waits; deeper queues make a busy node plan on old frames)",
                                   lambda v: None if v >= 1 else "must be >= 1")
    accel_filter_alpha: float = _param(0.5, "low-pass weight of a new finite-difference acceleration (1: no filter)",
                                       lambda v: None if 0 < v <= 1 else "must be in (0, 1]")
    max_stamp_ahead_s: float = _param(0.5, "inputs stamped further ahead of the node clock than this are rejected "
                                      "(future_stamp) and never stored", _non_negative)
    max_speed_mps: float = _param(70.0, "odometry with a faster speed |(vx, vy)| is rejected (implausible_speed)",
                                  _positive)
    max_accel_mps2: float = _param(30.0, "odometry whose finite-difference acceleration exceeds this is rejected "
                                   "(implausible_accel) unless the next message confirms the jump", _positive)
    max_yaw_rate_radps: float = _param(3.0, "odometry with a larger |twist.angular.z| is rejected "
                                       "(implausible_yaw_rate)", _positive)
    max_point_range_m: float = _param(500.0, "LiDAR points with a coordinate beyond +-this (sensor frame) are "
                                      "dropped and counted; a cloud with none left is rejected", _positive)
    diagnostics_period_s: float = _param(1.0, "period of /diagnostics", _positive)
    autostart: bool = _param(False, "configure and activate at start instead of waiting for lifecycle requests")

    def backend_option_dict(self) -> dict[str, Any]:
        return _parse_options(self.backend_options)


PARAM_FIELDS = {f.name: f for f in dataclasses.fields(NodeParams)}


def defaults() -> dict[str, Any]:
    return dataclasses.asdict(NodeParams())


def describe(name: str) -> str:
    f = PARAM_FIELDS[name]
    choices = f.metadata["choices"]
    return f.metadata["doc"] + (f" (one of {list(choices)})" if choices else "")


def declarations() -> list[tuple[str, Any, str]]:
    """(name, default, description) of every parameter, in table order."""
    return [(name, value, describe(name)) for name, value in defaults().items()]


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Bring a value to the type of its default: ints are accepted for floats (``-p rate_hz:=45``)."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is list:
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in value):
            return [float(v) for v in value]
    elif kind is str and isinstance(value, str):
        return value
    raise ParameterError(f"parameter {name!r}: expected {kind.__name__}, got {type(value).__name__} {value!r}")


def params_from_values(values: Mapping[str, Any]) -> NodeParams:
    """Validate raw parameter values (missing ones take their defaults) into a NodeParams."""
    unknown = sorted(set(values) - set(PARAM_FIELDS))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; known: {sorted(PARAM_FIELDS)}")
    base = defaults()
    checked: dict[str, Any] = {}
    for name, f in PARAM_FIELDS.items():
        value = _coerce(name, values.get(name, base[name]), base[name])
        choices, check = f.metadata["choices"], f.metadata["check"]
        if choices is not None and value not in choices:
            raise ParameterError(f"parameter {name!r} = {value!r}: expected one of {list(choices)}")
        problem = check(value) if check is not None else None
        if problem:
            raise ParameterError(f"parameter {name!r} = {value!r}: {problem}")
        checked[name] = value
    return NodeParams(**checked)


def command_line_overrides(argv: Sequence[str], node_names: Sequence[str] = (NODE_NAME,)) -> dict[str, Any]:
    """The ``-p [node:]name:=value`` (``--param``) overrides in the ``--ros-args`` sections of ``argv``, values
    read as YAML like rcl does; ``node:`` rules apply only when ``node`` is one of ``node_names``. Later rules win.

    Why: rcl silently drops a ``-p`` override whose type differs from the same parameter's value in a
    ``--params-file`` (``-p rate_hz:=fast`` then runs at the file's 45 Hz), so the node reads its own command line
    to fail configure instead (:func:`override_type_errors`).
    """
    overrides: dict[str, Any] = {}
    in_ros_args = False
    tokens = iter(argv)
    for token in tokens:
        if token == "--ros-args":
            in_ros_args = True
        elif token == "--":
            in_ros_args = False
        elif in_ros_args and token in ("-p", "--param"):
            target, sep, text = next(tokens, "").partition(":=")
            node, _, name = target.rpartition(":")
            if not sep or (node and node not in node_names):
                continue
            try:
                overrides[name] = yaml.safe_load(text) if text else ""
            except yaml.YAMLError:
                overrides[name] = text
    return overrides


def override_type_errors(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Parameter name -> error for each known parameter whose override cannot take the parameter's type."""
    base = defaults()
    errors = {}
    for name, value in overrides.items():
        if name in base:
            try:
                _coerce(name, value, base[name])
            except ParameterError as err:
                errors[name] = f"{err} (command-line override -p {name}:={value})"
    return errors
