"""Raw sensors -> model input tensors: camera panorama, LiDAR height histogram, ego status vector.

Pure numpy/OpenCV functions, exact with respect to the naive reference in :mod:`.preprocess_reference` (the NAVSIM
contract) but faster: the camera path resizes each cropped camera straight into its slot of the output instead of
stitching a 4096-pixel panorama first, and the LiDAR path bins points arithmetically instead of ``np.histogramdd``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..contract import CAMERA_NAMES, DRIVING_COMMANDS, STATUS_DIM, command_index
from ..model.config import CameraConfig, LidarConfig, ModelConfig
from .preprocess_reference import PIXEL_SCALE, camera_feature_reference, lidar_bin_edges
from .types import PlannerInputs, SensorFrame


# -- camera -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraLayout:
    """Crops of one input resolution and, when the fast path is exact, each camera's column slot in the output."""

    crop_rows: int
    side_crop_cols: int
    stitched_width: int
    # Output column ranges (start, stop) of left, front, right; None when the piecewise resize would not be exact.
    slots: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None


def camera_layout(image_height: int, image_width: int, cfg: CameraConfig) -> CameraLayout:
    """Scale the reference crops to an input resolution and decide whether the piecewise resize is exact.

    Resizing each camera into its own output slot equals resizing the stitched panorama when the horizontal factor
    is an integer >= 1 and every camera boundary falls on a multiple of it: bilinear sampling then never reads
    across a boundary and every slot sees the same sampling phase. Otherwise ``slots`` is None (naive path).
    """
    if image_height * cfg.source_width != image_width * cfg.source_height:
        raise ValueError(
            f"camera images are {image_width}x{image_height}; expected the aspect ratio of the reference "
            f"{cfg.source_width}x{cfg.source_height}"
        )
    if (cfg.crop_rows * image_height) % cfg.source_height or (cfg.side_crop_cols * image_width) % cfg.source_width:
        raise ValueError(
            f"camera images are {image_width}x{image_height}: the reference crops ({cfg.crop_rows} rows, "
            f"{cfg.side_crop_cols} side columns at {cfg.source_width}x{cfg.source_height}) do not scale to whole pixels"
        )
    crop_rows = cfg.crop_rows * image_height // cfg.source_height
    side_crop_cols = cfg.side_crop_cols * image_width // cfg.source_width
    side_width = image_width - 2 * side_crop_cols
    if image_height - 2 * crop_rows <= 0 or side_width <= 0:
        raise ValueError(f"camera images are {image_width}x{image_height}: the crops leave no pixels")
    stitched_width = 2 * side_width + image_width
    bounds = (0, side_width, side_width + image_width, stitched_width)
    factor, remainder = divmod(stitched_width, cfg.width)
    slots = None
    if factor >= 1 and remainder == 0 and all(b % factor == 0 for b in bounds):
        out = [b // factor for b in bounds]
        slots = ((out[0], out[1]), (out[1], out[2]), (out[2], out[3]))
    return CameraLayout(crop_rows, side_crop_cols, stitched_width, slots)


def _validate_images(images: Sequence[np.ndarray]) -> tuple[int, int]:
    for name, image in zip(CAMERA_NAMES, images):
        if not isinstance(image, np.ndarray):
            raise ValueError(f"{name} camera: expected a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(f"{name} camera: expected dtype uint8, got {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} camera: expected shape (H, W, 3), got {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"{name} camera: empty image {image.shape}")
    for name, image in zip(CAMERA_NAMES[1:], images[1:]):
        if image.shape != images[0].shape:
            raise ValueError(f"{name} camera is {image.shape} but the left camera is {images[0].shape}")
    return images[0].shape[0], images[0].shape[1]


def camera_feature(left: np.ndarray, front: np.ndarray, right: np.ndarray, cfg: CameraConfig) -> np.ndarray:
    """Three (H, W, 3) uint8 RGB cameras -> (3, cfg.height, cfg.width) float32 in [0, 1], channel order kept.

    Images may have any size with the reference aspect ratio; the crops scale with it (see :func:`camera_layout`).
    """
    height, width = _validate_images((left, front, right))
    layout = camera_layout(height, width, cfg)
    rows = slice(layout.crop_rows, height - layout.crop_rows)
    if layout.slots is None:
        return camera_feature_reference(
            left, front, right, layout.crop_rows, layout.side_crop_cols, cfg.height, cfg.width
        )
    side_cols = slice(layout.side_crop_cols, width - layout.side_crop_cols)
    pieces = (left[rows, side_cols], front[rows], right[rows, side_cols])
    resized = np.empty((cfg.height, cfg.width, 3), dtype=np.uint8)
    for piece, (start, stop) in zip(pieces, layout.slots):
        slot = resized[:, start:stop]
        written = cv2.resize(piece, (stop - start, cfg.height), dst=slot, interpolation=cv2.INTER_LINEAR)
        if not np.shares_memory(written, slot):  # OpenCV reallocated instead of writing in place
            slot[...] = written
    # Float only at the output size; the same float32 division as the reference.
    out = np.empty((3, cfg.height, cfg.width), dtype=np.float32)
    np.divide(resized.transpose(2, 0, 1), PIXEL_SCALE, out=out, dtype=np.float32)
    return out


# -- LiDAR ------------------------------------------------------------------------------------------------------------
def _validate_points(points: np.ndarray) -> np.ndarray:
    if not isinstance(points, np.ndarray):
        raise ValueError(f"lidar points: expected a numpy array, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"lidar points: expected shape (N, >=3) with columns x, y, z, got {points.shape}")
    if points.dtype not in (np.float32, np.float64):
        raise ValueError(f"lidar points: expected dtype float32 or float64, got {points.dtype}")
    return points


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value in ``[edges[0], edges[-1]]`` with ``np.histogramdd`` semantics (right edge in last bin).

    An arithmetic guess, then one correction step against the actual edges, so float rounding of the guess or of
    ``np.linspace`` never moves a point into a different bin than ``searchsorted`` would.
    """
    num_bins = len(edges) - 1
    scale = num_bins / (edges[-1] - edges[0])
    index = ((values - edges[0]) * scale).astype(np.intp)
    np.minimum(index, num_bins - 1, out=index)
    index -= values < edges[index]
    index += (values >= edges[index + 1]) & (index < num_bins - 1)
    return index


def lidar_feature(points: np.ndarray, cfg: LidarConfig) -> np.ndarray:
    """LiDAR sweep (N, >=3) x, y, z [m] in the ego frame -> (1, S, S) float32 histogram of points above the ground.

    Keeps min_z < z < max_z and x, y in [-range, range]; rows are x (row 0 at -range), columns y. Counts are
    clipped at ``max_points_per_pixel`` and divided by it. Rows with a non-finite x, y or z are dropped.
    """
    points = _validate_points(points)
    size = cfg.size
    edges = lidar_bin_edges(cfg)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    lo, hi = edges[0], edges[-1]  # float64 scalars: x, y compare in float64 like histogramdd's searchsorted
    # NaN fails every comparison and +-inf fails the range test, so non-finite rows drop out on their own.
    # The height thresholds are Python floats and compare in the points' dtype, exactly as in the reference.
    keep = (z < cfg.max_z) & (z > cfg.min_z)
    keep &= (x >= lo) & (x <= hi) & (y >= lo) & (y <= hi)
    rows = np.flatnonzero(keep)  # integer gather: several times faster than boolean indexing of strided columns
    flat = _bin_index(x[rows].astype(np.float64), edges) * size + _bin_index(y[rows].astype(np.float64), edges)
    counts = np.bincount(flat, minlength=size * size).reshape(size, size)
    hist = np.minimum(counts, cfg.max_points_per_pixel) / cfg.max_points_per_pixel
    return hist.astype(np.float32)[None]


# -- status -----------------------------------------------------------------------------------------------------------
def _finite_pair(value: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    try:
        pair = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected two numbers, got {value!r}") from err
    if pair.shape != (2,):
        raise ValueError(f"{name}: expected shape (2,), got {pair.shape}")
    if not np.isfinite(pair).all():
        raise ValueError(f"{name}: non-finite value in {pair.tolist()}")
    return pair


def status_feature(
    command: int | str, velocity: Sequence[float] | np.ndarray, acceleration: Sequence[float] | np.ndarray
) -> np.ndarray:
    """(8,) float32: one-hot driving command, then (vx, vy) [m/s], then (ax, ay) [m/s^2], all in the ego frame."""
    status = np.zeros(STATUS_DIM, dtype=np.float32)
    status[command_index(command)] = 1.0
    n = len(DRIVING_COMMANDS)
    status[n : n + 2] = _finite_pair(velocity, "velocity")
    status[n + 2 : n + 4] = _finite_pair(acceleration, "acceleration")
    return status


# -- frames -----------------------------------------------------------------------------------------------------------
def _frame_features(frame: SensorFrame, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(frame.cameras) != len(CAMERA_NAMES):
        raise ValueError(f"expected {len(CAMERA_NAMES)} cameras {CAMERA_NAMES}, got {len(frame.cameras)}")
    camera = camera_feature(*frame.cameras, cfg.camera)
    lidar = lidar_feature(frame.lidar_points, cfg.lidar)
    status = status_feature(frame.command, frame.velocity, frame.acceleration)
    return camera, lidar, status


def preprocess_frame(frame: SensorFrame, cfg: ModelConfig) -> PlannerInputs:
    """One frame -> model inputs with batch dimension 1 (float32, C-contiguous)."""
    camera, lidar, status = _frame_features(frame, cfg)
    return PlannerInputs(camera=camera[None], lidar=lidar[None], status=status[None])


def preprocess_batch(frames: Sequence[SensorFrame], cfg: ModelConfig) -> PlannerInputs:
    """Several frames -> model inputs stacked along the batch dimension, in the order given."""
    if len(frames) == 0:
        raise ValueError("preprocess_batch: no frames")
    features = [_frame_features(frame, cfg) for frame in frames]
    camera, lidar, status = (np.stack(parts) for parts in zip(*features))
    return PlannerInputs(camera=camera, lidar=lidar, status=status)
