"""Builds the node's candidate-trajectory outputs from a PlanResult's modes and scores.

``candidates_raw`` is a Float32MultiArray whose layout describes the (modes, poses, 3) block; the M mode scores
follow that block in ``data`` (see :func:`candidates_to_array` / :func:`candidates_from_array`).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Float32MultiArray, MultiArrayDimension
from visualization_msgs.msg import Marker, MarkerArray

from ..contract import POSE_DIM
from .converters import make_header

MARKER_NAMESPACE = "diffusiondrive_candidates"
MARKER_LIFETIME_S = 0.5


def _check_modes(modes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    modes = np.asarray(modes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if modes.ndim != 3 or modes.shape[2] != POSE_DIM or scores.shape != (modes.shape[0],):
        raise ValueError(f"expected modes (M, K, {POSE_DIM}) and scores (M,), got {modes.shape} and {scores.shape}")
    return modes, scores


def score_color(score: float, lowest: float, highest: float) -> ColorRGBA:
    """Red (worst) -> green (best) over the frame's score range; the best mode is opaque, the rest translucent."""
    span = highest - lowest
    t = 1.0 if span <= 1e-9 else float(np.clip((score - lowest) / span, 0.0, 1.0))
    return ColorRGBA(r=1.0 - t, g=t, b=0.1, a=0.3 + 0.7 * t)


def candidates_to_markers(modes: np.ndarray, scores: np.ndarray, stamp_s: float, frame_id: str) -> MarkerArray:
    """One LINE_STRIP per mode (id = mode index, so each frame replaces the last), coloured by score."""
    modes, scores = _check_modes(modes, scores)
    finite = np.isfinite(scores)
    lowest = float(scores[finite].min()) if finite.any() else 0.0
    highest = float(scores[finite].max()) if finite.any() else 1.0
    header = make_header(stamp_s, frame_id)
    array = MarkerArray()
    for index, (mode, score) in enumerate(zip(modes, scores)):
        marker = Marker(header=header, ns=MARKER_NAMESPACE, id=index, type=Marker.LINE_STRIP, action=Marker.ADD)
        marker.pose.orientation.w = 1.0
        marker.scale.x = 0.15
        marker.color = score_color(float(score), lowest, highest)
        marker.lifetime = Duration(sec=0, nanosec=int(MARKER_LIFETIME_S * 1e9))
        marker.points = [Point(x=0.0, y=0.0, z=0.0)] + [Point(x=float(x), y=float(y), z=0.0) for x, y, _ in mode]
        array.markers.append(marker)
    return array


def candidates_to_array(modes: np.ndarray, scores: np.ndarray) -> Float32MultiArray:
    """Machine-readable candidates: layout (modes, poses, x/y/heading); data = modes.ravel() then the M scores."""
    modes, scores = _check_modes(modes, scores)
    m, k, d = modes.shape
    msg = Float32MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label="modes", size=m, stride=m * k * d),
        MultiArrayDimension(label="poses", size=k, stride=k * d),
        MultiArrayDimension(label="x_y_heading", size=d, stride=d),
    ]
    msg.layout.data_offset = 0
    msg.data = np.concatenate([modes.ravel(), scores]).astype(np.float32).tolist()
    return msg


def candidates_from_array(msg) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`candidates_to_array`: ((M, K, 3) modes, (M,) scores)."""
    dims = list(msg.layout.dim)
    if len(dims) != 3:
        raise ValueError(f"expected a 3-D layout (modes, poses, x_y_heading), got {len(dims)} dimensions")
    m, k, d = (int(dim.size) for dim in dims)
    data = np.asarray(msg.data, dtype=np.float32)
    if data.size != m * k * d + m:
        raise ValueError(f"data has {data.size} values, expected {m}x{k}x{d} modes + {m} scores")
    return data[: m * k * d].reshape(m, k, d), data[m * k * d:]
