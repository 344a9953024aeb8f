"""A picture of one sample for eyeballing the sensors: three cameras on top, LiDAR BEV with boxes and plan below."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..geometry import box_corners
from ..runtime.types import SensorFrame

BEV_RANGE_M = 32.0
BEV_PX_PER_M = 8.0


def lidar_bev_image(frame: SensorFrame, trajectory: np.ndarray | None = None, boxes: np.ndarray | None = None,
                    range_m: float = BEV_RANGE_M, px_per_m: float = BEV_PX_PER_M) -> np.ndarray:
    """RGB top view (x up, y left), ego at the centre: ground points grey, higher points white, boxes, plan."""
    size = int(2 * range_m * px_per_m)
    img = np.full((size, size, 3), 20, np.uint8)

    def to_px(xy: np.ndarray) -> np.ndarray:
        cols = (range_m - xy[..., 1]) * px_per_m
        rows = (range_m - xy[..., 0]) * px_per_m
        return np.stack([cols, rows], -1)

    pts = np.asarray(frame.lidar_points)[:, :3]
    px = np.round(to_px(pts[:, :2])).astype(int)
    ok = (px[:, 0] >= 0) & (px[:, 0] < size) & (px[:, 1] >= 0) & (px[:, 1] < size)
    high = pts[:, 2] > 0.2
    if boxes is not None and len(boxes):
        corners = box_corners(np.asarray(boxes)[:, :3], np.asarray(boxes)[:, 3], np.asarray(boxes)[:, 4])
        cv2.polylines(img, [np.round(to_px(c)).astype(np.int32) for c in corners], True, (60, 200, 255), 1)
    img[px[ok & ~high, 1], px[ok & ~high, 0]] = (110, 110, 110)
    img[px[ok & high, 1], px[ok & high, 0]] = (255, 255, 255)
    ego = box_corners(np.zeros(3), 4.5, 1.9)
    cv2.polylines(img, [np.round(to_px(ego)).astype(np.int32)], True, (0, 255, 0), 1)
    if trajectory is not None:
        traj = np.concatenate([np.zeros((1, 2)), np.asarray(trajectory)[:, :2]])
        cv2.polylines(img, [np.round(to_px(traj)).astype(np.int32)], False, (255, 60, 60), 2)
        for p in np.round(to_px(traj[1:])).astype(int):
            cv2.circle(img, tuple(int(v) for v in p), 3, (255, 60, 60), -1)
    return img


def sample_picture(frame: SensorFrame, trajectory: np.ndarray | None = None, boxes: np.ndarray | None = None,
                   bev_semantic: np.ndarray | None = None) -> np.ndarray:
    """One RGB image: the three cameras side by side above the LiDAR BEV (and the BEV semantic map if given)."""
    cams = np.concatenate(list(frame.cameras), axis=1)
    bev = lidar_bev_image(frame, trajectory, boxes)
    panels = [bev]
    if bev_semantic is not None:
        palette = np.array([[0, 0, 0], [90, 90, 90], [160, 140, 110], [255, 255, 0], [255, 128, 0], [0, 120, 255],
                            [255, 0, 120]], np.uint8)
        sem = palette[bev_semantic]
        sem = np.ascontiguousarray(np.rot90(sem, 2))  # row 0 = far ahead, column 0 = left, like the LiDAR panel
        scale = bev.shape[0] / 2 / sem.shape[0]
        sem = cv2.resize(sem, (int(sem.shape[1] * scale), int(sem.shape[0] * scale)), interpolation=cv2.INTER_NEAREST)
        panels.append(sem)
    height = max(p.shape[0] for p in panels)
    row = np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0))) for p in panels], axis=1)
    width = max(cams.shape[1], row.shape[1])
    cams = np.pad(cams, ((0, 4), (0, width - cams.shape[1]), (0, 0)))
    row = np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)))
    return np.concatenate([cams, row], axis=0)


def save_sample_picture(path: str | os.PathLike, frame: SensorFrame, trajectory: np.ndarray | None = None,
                        boxes: np.ndarray | None = None, bev_semantic: np.ndarray | None = None) -> None:
    img = sample_picture(frame, trajectory, boxes, bev_semantic)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
