"""The on-disk training-data format (docs/data_format.md): one ``.npz`` shard per scene plus ``manifest.json``.

A shard holds the preprocessed model inputs at the config's size and the training targets of every sample of one
scene, stacked along axis 0, and a JSON ``meta`` record that makes the shard self-describing (the manifest can be
rebuilt from the shards alone). Shards are written to a hidden temporary name and atomically renamed, so a shard
under its final name is always complete.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import AGENT_STATE_DIM, NUM_AGENTS, NUM_POSES, POSE_DIM, STATUS_DIM
from ..files import TEMP_SUFFIX, atomic_write, file_sha256  # noqa: F401 - TEMP_SUFFIX: the shards' temp files
from ..model.config import ModelConfig
from ..runtime.types import PlannerInputs
from .targets import agent_targets, check_bev_semantic, check_trajectory

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_PATTERN = re.compile(r"^shard-(\d{6,})\.npz$")

LIDAR_UINT8 = "uint8_counts"  # lidar stored as integer counts; value = counts / lidar.max_points_per_pixel
LIDAR_FLOAT16 = "float16"  # fallback when the preprocessed lidar is not an exact count grid

# Per-sample arrays every shard holds (the stacked shard arrays have a leading sample axis).
TENSOR_KEYS = ("camera", "lidar", "status", "trajectory", "agent_states", "agent_labels", "bev_semantic")
METADATA_KEYS = ("t", "command")
RAW_KEYS = ("raw_cameras", "raw_lidar_points", "raw_lidar_offsets", "raw_velocity", "raw_acceleration", "raw_stamp")


class ShardError(ValueError):
    """A shard is unreadable, torn, or does not match the expected format / config."""


def shard_name(seed: int) -> str:
    if seed < 0:
        raise ValueError(f"scene seed must be >= 0, got {seed}")
    return f"shard-{seed:06d}.npz"


def sample_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shape of one sample's stored array for each tensor key, from the model config."""
    s = config.lidar.size
    return {
        "camera": (3, config.camera.height, config.camera.width),
        "lidar": (1, s, s),
        "status": (STATUS_DIM,),
        "trajectory": (NUM_POSES, POSE_DIM),
        "agent_states": (NUM_AGENTS, AGENT_STATE_DIM),
        "agent_labels": (NUM_AGENTS,),
        "bev_semantic": tuple(int(v) for v in config.aux_heads.bev_semantic_size),
    }


# -- encoding one sample ----------------------------------------------------------------------------------------
def encode_sample(
    inputs: PlannerInputs,
    expert_future: np.ndarray,
    agent_boxes: np.ndarray,
    bev_semantic: np.ndarray,
    config: ModelConfig,
    agent_keep: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Turn one frame's preprocessed inputs (batch of 1) and its targets into the stored per-sample arrays.

    The camera becomes uint8 (x * 255, exact for images resized from uint8), the lidar stays float32 here and is
    packed per shard by :func:`stack_samples`. Agents are reduced to the agent head's nearest-``NUM_AGENTS`` slots.
    """
    if inputs.batch_size != 1:
        raise ValueError(f"encode_sample takes one frame, got a batch of {inputs.batch_size}")
    shapes = sample_shapes(config)
    camera = np.asarray(inputs.camera[0], dtype=np.float32)
    lidar = np.asarray(inputs.lidar[0], dtype=np.float32)
    status = np.asarray(inputs.status[0], dtype=np.float32)
    for key, value in (("camera", camera), ("lidar", lidar), ("status", status)):
        if value.shape != shapes[key]:
            raise ValueError(f"preprocessed {key} has shape {value.shape}, expected {shapes[key]} from the config")
    if camera.size and (camera.min() < -1e-6 or camera.max() > 1 + 1e-6):
        raise ValueError(f"camera values must lie in [0, 1], got {camera.min()}..{camera.max()}")
    states, labels = agent_targets(agent_boxes, config.lidar.range_m, keep=agent_keep)
    return {
        "camera": np.clip(np.rint(camera * 255.0), 0, 255).astype(np.uint8),
        "lidar": lidar,
        "status": status,
        "trajectory": check_trajectory(expert_future),
        "agent_states": states,
        "agent_labels": labels,
        "bev_semantic": check_bev_semantic(bev_semantic, shapes["bev_semantic"]),
    }


def pack_lidar(lidar: np.ndarray, max_points_per_pixel: float) -> tuple[np.ndarray, str]:
    """Store lidar (K, 1, S, S) as uint8 counts when that is lossless, else as float16."""
    counts = lidar * float(max_points_per_pixel)
    rounded = np.rint(counts)
    if lidar.size == 0 or (np.abs(counts - rounded).max() < 1e-3 and rounded.min() >= 0 and rounded.max() <= 255):
        return rounded.astype(np.uint8), LIDAR_UINT8
    return lidar.astype(np.float16), LIDAR_FLOAT16


def unpack_lidar(stored: np.ndarray, encoding: str, max_points_per_pixel: float) -> np.ndarray:
    if encoding == LIDAR_UINT8:
        return stored.astype(np.float32) / np.float32(max_points_per_pixel)
    if encoding == LIDAR_FLOAT16:
        return stored.astype(np.float32)
    raise ShardError(f"unknown lidar encoding {encoding!r}")


def stack_samples(
    samples: Sequence[dict[str, np.ndarray]], config: ModelConfig
) -> tuple[dict[str, np.ndarray], str]:
    """Stack per-sample arrays (from :func:`encode_sample`, plus ``t``/``command``/raw keys) into shard arrays."""
    shapes = sample_shapes(config)
    arrays: dict[str, np.ndarray] = {}
    dtypes = {"camera": np.uint8, "lidar": np.float32, "status": np.float32, "trajectory": np.float32,
              "agent_states": np.float32, "agent_labels": np.uint8, "bev_semantic": np.uint8}
    for key in TENSOR_KEYS:
        if samples:
            arrays[key] = np.stack([s[key] for s in samples]).astype(dtypes[key])
        else:
            arrays[key] = np.zeros((0, *shapes[key]), dtype=dtypes[key])
    arrays["t"] = np.asarray([s["t"] for s in samples], dtype=np.float64)
    arrays["command"] = np.asarray([s["command"] for s in samples], dtype=np.int8)
    arrays["lidar"], encoding = pack_lidar(arrays["lidar"], config.lidar.max_points_per_pixel)
    if samples and "raw_cameras" in samples[0]:
        arrays.update(_stack_raw(samples))
    return arrays, encoding


def raw_sensor_arrays(frame: Any) -> dict[str, Any]:
    """Raw sensors of a SensorFrame for the optional ``--raw`` copy (cameras, points x/y/z, dynamics, stamp)."""
    points = np.asarray(frame.lidar_points, dtype=np.float32)
    return {
        "raw_cameras": np.stack([np.asarray(c, dtype=np.uint8) for c in frame.cameras]),
        "raw_lidar_points": points[:, :3].reshape(-1, 3),
        "raw_velocity": np.asarray(frame.velocity, dtype=np.float32),
        "raw_acceleration": np.asarray(frame.acceleration, dtype=np.float32),
        "raw_stamp": float(frame.stamp),
    }


def _stack_raw(samples: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    counts = [len(s["raw_lidar_points"]) for s in samples]
    return {
        "raw_cameras": np.stack([s["raw_cameras"] for s in samples]),
        "raw_lidar_points": np.concatenate([s["raw_lidar_points"] for s in samples]).astype(np.float32),
        "raw_lidar_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "raw_velocity": np.stack([s["raw_velocity"] for s in samples]).astype(np.float32),
        "raw_acceleration": np.stack([s["raw_acceleration"] for s in samples]).astype(np.float32),
        "raw_stamp": np.asarray([s["raw_stamp"] for s in samples], dtype=np.float64),
    }


# -- shard files ------------------------------------------------------------------------------------------------
def write_shard(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Write a shard atomically; returns its sha256. ``meta`` must be JSON-serialisable."""
    path = Path(path)
    payload = dict(arrays)
    payload["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    atomic_write(path, lambda f: np.savez_compressed(f, **payload))
    return file_sha256(path)


def read_shard(path: str | os.PathLike, keys: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Load a shard's arrays (all, or only ``keys``) and its meta record; raise ShardError if it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            wanted = [k for k in npz.files if k != "meta"] if keys is None else list(keys)
            arrays = {k: npz[k] for k in wanted}
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError) as exc:
        raise ShardError(f"cannot read shard {path}: {exc}") from exc
    except Exception as exc:  # zipfile.BadZipFile, zlib.error: a truncated or corrupted archive
        raise ShardError(f"cannot read shard {path}: {type(exc).__name__}: {exc}") from exc
    return arrays, meta


def verify_shard(path: str | os.PathLike, config: ModelConfig, expected_sha256: str | None = None) -> dict:
    """Check a shard fully (checksum, format version, config, keys, shapes, sample count); return its meta."""
    path = Path(path)
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise ShardError(f"{path.name}: checksum differs from the manifest")
    arrays, meta = read_shard(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ShardError(f"{path.name}: format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
    if meta.get("config_name") != config.name:
        raise ShardError(f"{path.name}: made for config {meta.get('config_name')!r}, expected {config.name!r}")
    n = meta.get("num_samples")
    shapes = sample_shapes(config)
    for key in (*TENSOR_KEYS, *METADATA_KEYS):
        if key not in arrays:
            raise ShardError(f"{path.name}: missing array {key!r}")
        expected = (n, *shapes.get(key, ()))
        if arrays[key].shape != expected:
            raise ShardError(f"{path.name}: {key} has shape {arrays[key].shape}, expected {expected}")
    return meta


# -- manifest ---------------------------------------------------------------------------------------------------
def write_manifest(out_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8")
    atomic_write(path, lambda f: f.write(text))
    return path


def read_manifest(data_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {data_dir}: not a dataset folder (run `data generate`)")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ShardError(
            f"{path}: format version {manifest.get('format_version')}, this code reads version {FORMAT_VERSION}"
        )
    return manifest


def build_manifest(
    config: ModelConfig, generator: dict[str, Any], shards: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest record: format, config name + input shapes, generator args, shards sorted by file name."""
    shapes = sample_shapes(config)
    ordered = sorted(shards, key=lambda s: s["file"])
    return {
        "format_version": FORMAT_VERSION,
        "config_name": config.name,
        "shapes": {k: list(v) for k, v in shapes.items()},
        "lidar_max_points_per_pixel": config.lidar.max_points_per_pixel,
        "config": config.to_dict(),
        "generator": generator,
        "num_scenes": len(ordered),
        "num_samples": int(sum(s["num_samples"] for s in ordered)),
        "shards": list(ordered),
    }
