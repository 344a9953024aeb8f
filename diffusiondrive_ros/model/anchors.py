"""Trajectory anchors: loading an anchors file, or a deterministic fan when none has been clustered yet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contract import NUM_POSES, POSE_INTERVAL_S


def fan_anchors(num_anchors: int = 20) -> np.ndarray:
    """A deterministic (num_anchors, 8, 2) set of constant-speed, constant-curvature paths.

    Only a placeholder for random-weight models and tests; real models use k-means anchors of their training set
    (``diffusiondrive anchors``).
    """
    speeds = np.array([0.0, 3.0, 7.0, 11.0, 15.0])
    n_curv = int(np.ceil(num_anchors / len(speeds)))
    curvatures = np.linspace(-0.08, 0.08, n_curv)
    t = POSE_INTERVAL_S * np.arange(1, NUM_POSES + 1)
    out = []
    for v in speeds:
        for k in curvatures:
            s = v * t
            if abs(k) < 1e-9:
                xy = np.stack([s, np.zeros_like(s)], -1)
            else:
                xy = np.stack([np.sin(k * s) / k, (1 - np.cos(k * s)) / k], -1)
            out.append(xy)
    return np.asarray(out[:num_anchors], dtype=np.float32)


def load_anchors(path: str | Path | None, num_anchors: int) -> np.ndarray:
    if path is None:
        return fan_anchors(num_anchors)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"anchors file not found: {path}")
    anchors = np.load(path).astype(np.float32)
    if anchors.shape != (num_anchors, NUM_POSES, 2):
        raise ValueError(f"anchors file {path} has shape {anchors.shape}; expected ({num_anchors}, {NUM_POSES}, 2)")
    if not np.isfinite(anchors).all():
        raise ValueError(f"anchors file {path} contains non-finite values")
    return anchors
