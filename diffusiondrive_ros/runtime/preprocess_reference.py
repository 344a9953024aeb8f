"""Naive reference implementations of the camera and LiDAR features, written straight from the I/O contract.

They are the specification the fast paths in :mod:`.preprocess` are tested and benchmarked against, and the camera
fallback when the fast path's exactness conditions do not hold. No validation here: callers validate.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..model.config import LidarConfig

PIXEL_SCALE = np.float32(255.0)  # uint8 -> [0, 1], float32 division as torchvision's ToTensor does


def crop_and_stitch(
    left: np.ndarray, front: np.ndarray, right: np.ndarray, crop_rows: int, side_crop_cols: int
) -> np.ndarray:
    """Crop ``crop_rows`` top and bottom of all three cameras and ``side_crop_cols`` on both sides of the side
    cameras, then stitch left|front|right into one (H, W, 3) uint8 image."""
    rows = slice(crop_rows, left.shape[0] - crop_rows)
    side_cols = slice(side_crop_cols, left.shape[1] - side_crop_cols)
    return np.concatenate([left[rows, side_cols], front[rows], right[rows, side_cols]], axis=1)


def camera_feature_reference(
    left: np.ndarray,
    front: np.ndarray,
    right: np.ndarray,
    crop_rows: int,
    side_crop_cols: int,
    out_height: int,
    out_width: int,
) -> np.ndarray:
    """Crop, stitch, resize (bilinear) the whole panorama, scale to [0, 1], HWC -> CHW: (3, H, W) float32."""
    stitched = crop_and_stitch(left, front, right, crop_rows, side_crop_cols)
    resized = cv2.resize(stitched, (out_width, out_height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray((resized.astype(np.float32) / PIXEL_SCALE).transpose(2, 0, 1))


def lidar_bin_edges(cfg: LidarConfig) -> np.ndarray:
    """Histogram bin edges (S + 1,) float64, shared by x and y."""
    return np.linspace(-cfg.range_m, cfg.range_m, cfg.size + 1)


def lidar_feature_reference(points: np.ndarray, cfg: LidarConfig) -> np.ndarray:
    """Height-filtered 2-D point histogram via ``np.histogramdd``, clipped and normalised: (1, S, S) float32."""
    points = points[np.isfinite(points[:, :3]).all(axis=1)]
    points = points[points[:, 2] < cfg.max_z]
    above = points[points[:, 2] > cfg.min_z]
    edges = lidar_bin_edges(cfg)
    hist = np.histogramdd(above[:, :2], bins=(edges, edges))[0]
    hist[hist > cfg.max_points_per_pixel] = cfg.max_points_per_pixel
    return (hist / cfg.max_points_per_pixel).astype(np.float32)[None]
