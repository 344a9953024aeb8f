"""SE(2) helpers shared by preprocessing, the simulator, the PDM score and the ROS node.

Poses are (..., 3) arrays of x [m], y [m], heading [rad]; frames are right-handed, x forward, y left.
"""

from __future__ import annotations

import numpy as np


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def rotation(theta: float | np.ndarray) -> np.ndarray:
    """2x2 rotation matrix (or (...,2,2) for an array of angles)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def world_to_ego(poses: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """Express world-frame poses (..., 3) in the frame of ``ego_pose`` (x, y, heading)."""
    poses = np.asarray(poses, dtype=np.float64)
    ex, ey, eh = (float(v) for v in ego_pose[:3])
    c, s = np.cos(eh), np.sin(eh)
    dx, dy = poses[..., 0] - ex, poses[..., 1] - ey
    out = np.empty_like(poses)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    if poses.shape[-1] > 2:
        out[..., 2] = wrap_angle(poses[..., 2] - eh)
        out[..., 3:] = poses[..., 3:]
    return out


def ego_to_world(poses: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_ego`: ego-frame poses (..., 3) to the world frame."""
    poses = np.asarray(poses, dtype=np.float64)
    ex, ey, eh = (float(v) for v in ego_pose[:3])
    c, s = np.cos(eh), np.sin(eh)
    out = np.empty_like(poses)
    out[..., 0] = ex + c * poses[..., 0] - s * poses[..., 1]
    out[..., 1] = ey + s * poses[..., 0] + c * poses[..., 1]
    if poses.shape[-1] > 2:
        out[..., 2] = wrap_angle(poses[..., 2] + eh)
        out[..., 3:] = poses[..., 3:]
    return out


def rotate_vectors(vectors: np.ndarray, theta: float) -> np.ndarray:
    """Rotate (..., 2) vectors by ``theta`` (e.g. world velocity -> ego velocity with ``-heading``)."""
    c, s = np.cos(theta), np.sin(theta)
    v = np.asarray(vectors, dtype=np.float64)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def box_corners(poses: np.ndarray, length: float | np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) of oriented boxes centred at ``poses`` (front-left, front-right, rear-right, rear-left)."""
    poses = np.asarray(poses, dtype=np.float64)
    hl = np.asarray(length, dtype=np.float64)[..., None] / 2.0
    hw = np.asarray(width, dtype=np.float64)[..., None] / 2.0
    local_x = np.concatenate([hl, hl, -hl, -hl], -1) * np.ones(poses.shape[:-1] + (4,))
    local_y = np.concatenate([hw, -hw, -hw, hw], -1) * np.ones(poses.shape[:-1] + (4,))
    c, s = np.cos(poses[..., 2:3]), np.sin(poses[..., 2:3])
    x = poses[..., 0:1] + c * local_x - s * local_y
    y = poses[..., 1:2] + s * local_x + c * local_y
    return np.stack([x, y], -1)
