"""Reader of the NAVSIM / OpenScene log format, for users who have NAVSIM data.

OpenScene ``meta_datas/<split>/<log>.pkl`` files are lists of per-frame dicts at 2 Hz: ``token``, ``timestamp``
[us], ``log_name``, ``scene_token``, ``ego2global_translation`` / ``ego2global_rotation`` (quaternion w, x, y, z),
``ego_dynamic_state`` [vx, vy, ax, ay], ``driving_command`` (one-hot, 4), ``cams`` ({CAM_F0, CAM_L0, CAM_R0, ...:
``data_path`` ...}), ``lidar_path`` and ``anns`` (``gt_boxes`` (N, 7) x, y, z, l, w, h, yaw, ``gt_names`` ...).
Sensor paths are relative to the ``sensor_blobs`` root.

Each frame with 8 later frames at 0.5 s steps becomes a NAVSIM-style sample: the current frame is the (only)
history frame, the future trajectory is the later ego poses in the current ego frame, agents are the annotated
boxes, sensors go through the same preprocessing as the simulator's. As upstream NAVSIM does, LiDAR points and
boxes are taken as given in the ego frame. The BEV semantic target has only the box classes (static objects,
vehicles, pedestrians): the map classes need the nuPlan map, which this reader does not load.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..contract import DRIVING_COMMANDS, NUM_POSES, POSE_INTERVAL_S
from ..geometry import world_to_ego
from ..model.config import ModelConfig
from ..runtime.types import SensorFrame
from .pcd import read_pcd
from .sample import DrivingSample
from .targets import BEV_CLASS_NAMES, rasterize_boxes

CAMERA_KEYS = ("CAM_L0", "CAM_F0", "CAM_R0")  # left-front, front, right-front: SensorFrame.cameras order
TIMESTAMP_SCALE = 1e-6  # OpenScene timestamps are microseconds
STEP_TOLERANCE_S = 0.1  # a future frame may be this far off its 0.5 s slot before the window is rejected

# OpenScene box names -> simulator agent kinds (sim.world.AGENT_KINDS order) and NAVSIM BEV classes.
AGENT_KIND_OF_NAME = {"vehicle": 0, "pedestrian": 1, "bicycle": 2}
STATIC_KIND = 3
BEV_CLASS_OF_NAME = {
    "traffic_cone": BEV_CLASS_NAMES.index("static_object"),
    "barrier": BEV_CLASS_NAMES.index("static_object"),
    "czone_sign": BEV_CLASS_NAMES.index("static_object"),
    "generic_object": BEV_CLASS_NAMES.index("static_object"),
    "vehicle": BEV_CLASS_NAMES.index("vehicle"),
    "pedestrian": BEV_CLASS_NAMES.index("pedestrian"),
}


class NavsimFormatError(ValueError):
    """A log pickle or sensor blob does not look like OpenScene data."""


# -- pure conversions ---------------------------------------------------------------------------------------------
def quaternion_yaw(q: Sequence[float]) -> float:
    """Yaw [rad] of a (w, x, y, z) quaternion (rotation about z of the z-y-x Euler decomposition)."""
    w, x, y, z = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def ego_pose(frame: dict[str, Any]) -> np.ndarray:
    """Global (x, y, yaw) of a frame's ego."""
    try:
        translation = frame["ego2global_translation"]
        rotation = frame["ego2global_rotation"]
    except KeyError as exc:
        raise NavsimFormatError(f"frame {frame.get('token')!r} lacks {exc}") from exc
    return np.array([float(translation[0]), float(translation[1]), quaternion_yaw(rotation)], dtype=np.float64)


def future_trajectory(frames: Sequence[dict[str, Any]], index: int) -> np.ndarray:
    """Poses of frames index+1 .. index+8 in the ego frame of frame ``index``: (8, 3) float32."""
    if index + NUM_POSES >= len(frames):
        raise ValueError(f"frame {index} has only {len(frames) - index - 1} later frames, needs {NUM_POSES}")
    origin = ego_pose(frames[index])
    future = np.stack([ego_pose(frames[index + k]) for k in range(1, NUM_POSES + 1)])
    return world_to_ego(future, origin).astype(np.float32)


def has_regular_future(frames: Sequence[dict[str, Any]], index: int) -> bool:
    """True when frames index+1 .. index+8 exist, belong to the same log and sit on the 0.5 s grid."""
    if index + NUM_POSES >= len(frames):
        return False
    t0 = frames[index]["timestamp"] * TIMESTAMP_SCALE
    log = frames[index].get("log_name")
    for k in range(1, NUM_POSES + 1):
        later = frames[index + k]
        if later.get("log_name") != log:
            return False
        if abs(later["timestamp"] * TIMESTAMP_SCALE - t0 - k * POSE_INTERVAL_S) > STEP_TOLERANCE_S:
            return False
    return True


def annotation_boxes(frame: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Boxes (N, 5) x, y, heading, length, width from ``anns.gt_boxes`` (x, y, z, l, w, h, yaw) and their names."""
    anns = frame.get("anns") or {}
    gt = np.asarray(anns.get("gt_boxes", np.zeros((0, 7))), dtype=np.float32).reshape(-1, 7)
    names = [str(n) for n in anns.get("gt_names", [])]
    if len(names) != len(gt):
        raise NavsimFormatError(f"frame {frame.get('token')!r}: {len(gt)} gt_boxes but {len(names)} gt_names")
    return gt[:, [0, 1, 6, 3, 4]].copy(), names


def agent_kinds(names: Iterable[str]) -> np.ndarray:
    return np.asarray([AGENT_KIND_OF_NAME.get(n, STATIC_KIND) for n in names], dtype=np.int8)


def box_bev_semantic(boxes: np.ndarray, names: Sequence[str], size: tuple[int, int], range_m: float) -> np.ndarray:
    """BEV class map with the box classes only, painted in NAVSIM's order (static, vehicle, pedestrian)."""
    bev = np.zeros(size, dtype=np.uint8)
    classes = np.asarray([BEV_CLASS_OF_NAME.get(n, 0) for n in names], dtype=np.int64)
    for cls in sorted(set(BEV_CLASS_OF_NAME.values())):
        rasterize_boxes(bev, boxes[classes == cls], cls, range_m)
    return bev


def command_index(one_hot: Sequence[float] | int) -> int:
    """Index into DRIVING_COMMANDS of a one-hot (or already integer) driving command; all zeros -> unknown."""
    if np.ndim(one_hot) == 0:
        return int(one_hot)
    values = np.asarray(one_hot, dtype=np.float64).reshape(-1)
    if values.shape != (len(DRIVING_COMMANDS),):
        raise NavsimFormatError(f"driving_command has {values.size} entries, expected {len(DRIVING_COMMANDS)}")
    return int(np.argmax(values)) if values.any() else DRIVING_COMMANDS.index("unknown")


# -- files --------------------------------------------------------------------------------------------------------
def load_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Frames of one OpenScene log pickle, sorted by timestamp. Only open pickles you trust."""
    with open(path, "rb") as f:
        frames = pickle.load(f)
    if not isinstance(frames, list) or not all(isinstance(fr, dict) and "timestamp" in fr for fr in frames):
        raise NavsimFormatError(f"{path}: expected a list of frame dicts with timestamps")
    return sorted(frames, key=lambda fr: fr["timestamp"])


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise NavsimFormatError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sensor_frame(frame: dict[str, Any], sensor_root: str | os.PathLike) -> SensorFrame:
    """Raw sensors of one frame: cameras CAM_L0/CAM_F0/CAM_R0 (RGB) and the LiDAR sweep's x, y, z."""
    root = Path(sensor_root)
    cams = frame.get("cams") or {}
    missing = [k for k in CAMERA_KEYS if k not in cams]
    if missing:
        raise NavsimFormatError(f"frame {frame.get('token')!r} lacks camera(s) {missing}")
    cameras = tuple(read_rgb(root / cams[k]["data_path"]) for k in CAMERA_KEYS)
    points, fields = read_pcd(root / frame["lidar_path"])
    if fields[:3] != ("x", "y", "z"):
        raise NavsimFormatError(f"LiDAR sweep {frame['lidar_path']} starts with fields {fields[:3]}, not x y z")
    dynamics = np.asarray(frame.get("ego_dynamic_state", [0.0, 0.0, 0.0, 0.0]), dtype=np.float64)
    return SensorFrame(
        cameras=cameras,
        lidar_points=points[:, :3],
        velocity=(float(dynamics[0]), float(dynamics[1])),
        acceleration=(float(dynamics[2]), float(dynamics[3])),
        command=command_index(frame.get("driving_command", 3)),
        stamp=frame["timestamp"] * TIMESTAMP_SCALE,
    )


def log_samples(
    frames: Sequence[dict[str, Any]],
    sensor_root: str | os.PathLike,
    config: ModelConfig,
    log_index: int = 0,
    stride: int = 1,
) -> Iterator[DrivingSample]:
    """NAVSIM-style samples of one log: every ``stride``-th frame that has a regular 4 s future."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    size = tuple(int(v) for v in config.aux_heads.bev_semantic_size)
    t_start = frames[0]["timestamp"] * TIMESTAMP_SCALE if frames else 0.0
    for index in range(0, len(frames), stride):
        if not has_regular_future(frames, index):
            continue
        frame = frames[index]
        boxes, names = annotation_boxes(frame)
        yield DrivingSample(
            scene_id=str(frame.get("log_name", f"log-{log_index}")),
            t=frame["timestamp"] * TIMESTAMP_SCALE - t_start,
            seed=log_index,
            frame=sensor_frame(frame, sensor_root),
            expert_future=future_trajectory(frames, index),
            agent_boxes=boxes,
            agent_kinds=agent_kinds(names),
            bev_semantic=box_bev_semantic(boxes, names, size, config.lidar.range_m),
            token=str(frame.get("token", "")),
        )


def iter_navsim_samples(
    meta_dir: str | os.PathLike,
    sensor_root: str | os.PathLike,
    config: ModelConfig,
    stride: int = 1,
) -> Iterator[DrivingSample]:
    """Samples of every ``*.pkl`` log under ``meta_dir`` (sorted by name; ``seed`` = the log's index)."""
    logs = sorted(Path(meta_dir).glob("*.pkl"))
    if not logs:
        raise FileNotFoundError(f"no OpenScene log pickles (*.pkl) in {meta_dir}")
    for log_index, path in enumerate(logs):
        yield from log_samples(load_log(path), sensor_root, config, log_index, stride)


def convert_logs(
    meta_dir: str | os.PathLike,
    sensor_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: ModelConfig,
    stride: int = 1,
) -> dict[str, Any]:
    """Write NAVSIM logs as a dataset folder in this package's format (one shard per log); returns the manifest.

    Serial and not resumable: meant for small subsets (e.g. navmini); larger sets want the generate-style pool.
    """
    from ..runtime.preprocess import preprocess_frame
    from . import shards

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vehicle = AGENT_KIND_OF_NAME["vehicle"]
    entries = []
    logs = sorted(Path(meta_dir).glob("*.pkl"))
    if not logs:
        raise FileNotFoundError(f"no OpenScene log pickles (*.pkl) in {meta_dir}")
    for log_index, path in enumerate(logs):
        records = []
        scene_id = path.stem
        for sample in log_samples(load_log(path), sensor_root, config, log_index, stride):
            scene_id = sample.scene_id
            record = shards.encode_sample(
                preprocess_frame(sample.frame, config), sample.expert_future, sample.agent_boxes,
                sample.bev_semantic, config, agent_keep=sample.agent_kinds == vehicle,
            )
            record["t"] = sample.t
            record["command"] = sample.frame.command_index()
            records.append(record)
        arrays, encoding = shards.stack_samples(records, config)
        meta = {"format_version": shards.FORMAT_VERSION, "config_name": config.name, "scene_id": scene_id,
                "seed": log_index, "num_samples": len(records), "lidar_encoding": encoding,
                "generator": {"source": "navsim", "log": path.name, "stride": stride}}
        shard_path = out / shards.shard_name(log_index)
        digest = shards.write_shard(shard_path, arrays, meta)
        entries.append({"file": shard_path.name, "seed": log_index, "scene_id": scene_id,
                        "num_samples": len(records), "sha256": digest})
    manifest = shards.build_manifest(config, {"source": "navsim", "meta_dir": str(meta_dir), "stride": stride},
                                     entries)
    shards.write_manifest(out, manifest)
    return manifest
