"""Training targets in the layout the model's auxiliary heads expect (pure numpy functions).

The agent head has ``contract.NUM_AGENTS`` query slots: targets are the nearest boxes inside the LiDAR square
(|x|, |y| <= range), sorted by distance, zero-padded, with a 0/1 label per slot. The BEV semantic target covers
x in [0, range) (rows) and y in [-range, range) (columns), like NAVSIM's 0.25 m/px 128x256 map.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from ..contract import AGENT_STATE_DIM, NUM_AGENTS, NUM_BEV_CLASSES, NUM_POSES, POSE_DIM
from ..geometry import box_corners

# NAVSIM's BEV semantic classes (TransFuser config): index -> meaning. Index 0 is background.
BEV_CLASS_NAMES = ("background", "road", "walkway", "centerline", "static_object", "vehicle", "pedestrian")
assert len(BEV_CLASS_NAMES) == NUM_BEV_CLASSES


def agent_targets(
    boxes: np.ndarray,
    range_m: float,
    keep: np.ndarray | None = None,
    num_slots: int = NUM_AGENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest ``num_slots`` boxes inside the square |x|, |y| <= range_m, zero-padded.

    boxes: (N, 5) x, y, heading, length, width in the ego frame. keep: optional (N,) bool mask of boxes that count
    as agents (e.g. vehicles only, as in NAVSIM). Returns states (num_slots, 5) float32 and labels (num_slots,) uint8.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, AGENT_STATE_DIM)
    if boxes.ndim != 2 or boxes.shape[1] != AGENT_STATE_DIM:
        raise ValueError(f"agent boxes have shape {boxes.shape}, expected (N, {AGENT_STATE_DIM})")
    if keep is None:
        keep = np.ones(len(boxes), dtype=bool)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (len(boxes),):
        raise ValueError(f"agent keep mask has shape {keep.shape}, expected ({len(boxes)},)")
    inside = (np.abs(boxes[:, 0]) <= range_m) & (np.abs(boxes[:, 1]) <= range_m)
    chosen = boxes[keep & inside]
    order = np.argsort(np.hypot(chosen[:, 0], chosen[:, 1]), kind="stable")[:num_slots]
    states = np.zeros((num_slots, AGENT_STATE_DIM), dtype=np.float32)
    labels = np.zeros(num_slots, dtype=np.uint8)
    states[: len(order)] = chosen[order]
    labels[: len(order)] = 1
    return states, labels


def check_trajectory(trajectory: np.ndarray) -> np.ndarray:
    """Validate an expert future (NUM_POSES, 3) and return it as float32."""
    trajectory = np.asarray(trajectory, dtype=np.float32)
    if trajectory.shape != (NUM_POSES, POSE_DIM):
        raise ValueError(f"expert trajectory has shape {trajectory.shape}, expected ({NUM_POSES}, {POSE_DIM})")
    if not np.all(np.isfinite(trajectory)):
        raise ValueError("expert trajectory contains non-finite values")
    return trajectory


def check_bev_semantic(bev: np.ndarray, size: Iterable[int]) -> np.ndarray:
    """Validate a BEV class map (H, W) against the config size and the class count; return it as uint8."""
    size = tuple(int(s) for s in size)
    bev = np.asarray(bev)
    if bev.shape != size:
        raise ValueError(f"bev_semantic has shape {bev.shape}, expected {size} (config.aux_heads.bev_semantic_size)")
    if bev.size and (bev.min() < 0 or bev.max() >= NUM_BEV_CLASSES):
        raise ValueError(f"bev_semantic classes must lie in 0..{NUM_BEV_CLASSES - 1}, got {bev.min()}..{bev.max()}")
    return bev.astype(np.uint8)


def bev_pixels(xy: np.ndarray, size: tuple[int, int], range_m: float) -> np.ndarray:
    """Ego-frame (x, y) [m] -> fractional (column, row) pixel coordinates of the BEV semantic map.

    Row r covers x in [r, r+1) * range_m / H (x forward from 0); column c covers y in [-range_m, range_m).
    """
    h, w = size
    xy = np.asarray(xy, dtype=np.float64)
    rows = xy[..., 0] * h / range_m
    cols = (xy[..., 1] + range_m) * w / (2.0 * range_m)
    return np.stack([cols, rows], -1)


def rasterize_boxes(
    bev: np.ndarray, boxes: np.ndarray, class_index: int, range_m: float
) -> np.ndarray:
    """Paint oriented boxes (N, 5: x, y, heading, length, width) into ``bev`` (H, W) uint8 with ``class_index``."""
    if not 0 <= class_index < NUM_BEV_CLASSES:
        raise ValueError(f"class index {class_index} out of range 0..{NUM_BEV_CLASSES - 1}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, AGENT_STATE_DIM)
    if not len(boxes):
        return bev
    corners = box_corners(boxes[:, :3], boxes[:, 3], boxes[:, 4])  # (N, 4, 2)
    pixels = bev_pixels(corners, bev.shape, range_m)
    polygons = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in pixels]
    cv2.fillPoly(bev, polygons, color=int(class_index))
    return bev
