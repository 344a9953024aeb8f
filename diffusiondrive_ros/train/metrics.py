"""Validation metrics of a multi-mode planner: displacement errors, mode classification, mode diversity.

All functions are pure numpy on arrays with a leading batch axis; :class:`MetricAccumulator` averages them over a
validation set. Definitions are documented in docs/training.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..contract import NUM_POSES, POSE_INTERVAL_S
from ..pdm.scene import ScoringScene

EGO_WIDTH_M = float(ScoringScene.ego_width)  # the ego footprint width the PDM score uses
HORIZONS_S = (1.0, 2.0, 3.0, 4.0)
DIVERSITY_RESOLUTION_M = 0.1  # BEV grid cell of the swept-footprint raster
_SUBPIXEL_BITS = 4


def _check_xy(name: str, array: np.ndarray, ndim: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != ndim or array.shape[-2] != NUM_POSES or array.shape[-1] < 2:
        raise ValueError(f"{name} must have shape (..., {NUM_POSES}, >=2) with {ndim} axes, got {array.shape}")
    if not np.isfinite(array[..., :2]).all():
        raise ValueError(f"{name} contains non-finite values")
    return array[..., :2]


def horizon_index(horizon_s: float) -> int:
    """Number of poses up to ``horizon_s`` (poses at 0.5, 1.0, ... s): 1 s -> 2."""
    n = int(round(horizon_s / POSE_INTERVAL_S))
    if not 1 <= n <= NUM_POSES or abs(n * POSE_INTERVAL_S - horizon_s) > 1e-6:
        raise ValueError(f"horizon {horizon_s} s is not a multiple of {POSE_INTERVAL_S} s within the plan")
    return n


def displacement_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean (x, y) error per pose: (B, 8) from pred (B, 8, >=2) and target (B, 8, >=2)."""
    p, t = _check_xy("pred", pred, 3), _check_xy("target", target, 3)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} differ")
    return np.linalg.norm(p - t, axis=-1)


def ade_fde(pred: np.ndarray, target: np.ndarray, horizons_s: Sequence[float] = HORIZONS_S) -> dict[str, np.ndarray]:
    """Per-sample ADE (mean error over the poses up to h) and FDE (error at h) for each horizon h: (B,) arrays."""
    err = displacement_errors(pred, target)
    out = {}
    for h in horizons_s:
        n = horizon_index(h)
        out[f"ade_{h:g}s"] = err[:, :n].mean(axis=1)
        out[f"fde_{h:g}s"] = err[:, n - 1]
    return out


def min_over_modes(modes: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample minADE and minFDE over modes (B, M, 8, >=2) at the full horizon; each minimum taken separately."""
    m = _check_xy("modes", modes, 4)
    t = _check_xy("target", target, 3)
    if m.shape[0] != t.shape[0]:
        raise ValueError(f"modes batch {m.shape[0]} != target batch {t.shape[0]}")
    err = np.linalg.norm(m - t[:, None], axis=-1)  # (B, M, 8)
    return {"min_ade": err.mean(axis=2).min(axis=1), "min_fde": err[:, :, -1].min(axis=1)}


def positive_anchor(target: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Index of the anchor with the smallest mean L2 to the target (the loss's positive mode): (B,)."""
    t = _check_xy("target", target, 3)
    a = _check_xy("anchors", anchors, 3)
    return np.linalg.norm(t[:, None] - a[None], axis=-1).mean(axis=-1).argmin(axis=-1)


def mode_accuracy(scores: np.ndarray, target: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Per-sample 1.0 where the best-scored mode is the positive anchor of the ground truth, else 0.0."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(anchors):
        raise ValueError(f"scores must have shape (B, {len(anchors)}), got {scores.shape}")
    return (scores.argmax(axis=1) == positive_anchor(target, anchors)).astype(np.float64)


def swept_masks(
    modes_xy: np.ndarray, ego_width: float = EGO_WIDTH_M, resolution: float = DIVERSITY_RESOLUTION_M
) -> np.ndarray:
    """Boolean BEV rasters (M, H, W) of each mode's swept footprint on one shared grid.

    A mode's footprint is its polyline from the ego origin through its 8 poses drawn with a line as thick as the
    ego (round joints and ends, OpenCV sub-pixel polylines); rows follow x, columns y, cells ``resolution`` metres.
    """
    if ego_width <= 0 or resolution <= 0:
        raise ValueError(f"ego_width and resolution must be > 0, got {ego_width}, {resolution}")
    modes_xy = np.asarray(modes_xy, dtype=np.float64)[..., :2]
    paths = np.concatenate([np.zeros((len(modes_xy), 1, 2)), modes_xy], axis=1)  # every mode starts at the ego
    margin = ego_width + 2 * resolution
    lo = paths.reshape(-1, 2).min(axis=0) - margin
    size = np.ceil((paths.reshape(-1, 2).max(axis=0) + margin - lo) / resolution).astype(int)
    thickness = max(1, int(round(ego_width / resolution)))
    masks = np.zeros((len(paths), size[0], size[1]), dtype=np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    for mask, path in zip(masks, paths):
        # OpenCV points are (column, row) = (y, x) cells, in fixed point with _SUBPIXEL_BITS fractional bits.
        cells = (path - lo) / resolution
        points = np.rint(cells[:, ::-1] * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(mask, [points], False, 1, thickness=thickness, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return masks.astype(bool)


def mode_diversity(
    modes: np.ndarray, ego_width: float = EGO_WIDTH_M, resolution: float = DIVERSITY_RESOLUTION_M
) -> np.ndarray:
    """Per-sample diversity D = 1 - mean_i IoU(tau_i, union_j tau_j) of the modes (B, M, 8, >=2): (B,).

    tau_i is mode i's swept footprint (:func:`swept_masks`); since tau_i lies inside the union, the IoU is
    area(tau_i) / area(union). Identical modes give 0; M disjoint equal-area modes give 1 - 1/M.
    """
    m = _check_xy("modes", modes, 4)
    out = np.empty(len(m))
    for b, sample in enumerate(m):
        masks = swept_masks(sample, ego_width, resolution)
        union = masks.any(axis=0).sum()
        out[b] = 1.0 - float(masks.reshape(len(masks), -1).sum(axis=1).mean() / union)
    return out


def batch_metrics(
    trajectory: np.ndarray,
    modes: np.ndarray,
    scores: np.ndarray,
    target: np.ndarray,
    anchors: np.ndarray,
    diversity: bool = True,
) -> dict[str, np.ndarray]:
    """Every per-sample validation metric of a batch: ADE/FDE at 1-4 s of the best-scored mode (``trajectory``),
    minADE/minFDE over ``modes``, mode-classification accuracy and (optionally) mode diversity."""
    out = ade_fde(trajectory, target)
    out.update(min_over_modes(modes, target))
    out["mode_accuracy"] = mode_accuracy(scores, target, anchors)
    if diversity:
        out["diversity"] = mode_diversity(modes)
    return out


class MetricAccumulator:
    """Running per-sample means of named metrics (a validation pass adds one batch at a time)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, np.ndarray]) -> None:
        for name, v in values.items():
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            self.sums[name] = self.sums.get(name, 0.0) + float(v.sum())
            self.counts[name] = self.counts.get(name, 0) + v.size

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}
