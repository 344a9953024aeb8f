"""BEV semantic raster (NAVSIM layout) from the road map and the world snapshot: the BEV head's training target.

Classes: 0 background, 1 road, 2 walkway, 3 centreline, 4 static object, 5 vehicle, 6 pedestrian (cyclists too).
Pixel layout (rows x forward from 0, columns y from -range) comes from ``data.targets.bev_pixels``, the one definition.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..data.targets import bev_pixels, rasterize_boxes
from ..geometry import world_to_ego
from .map_adapter import RoadMap
from .world import AGENT_KINDS, WorldState

BEV_CLASSES = ("background", "road", "walkway", "centreline", "static", "vehicle", "pedestrian")
_KIND_TO_CLASS = {"vehicle": 5, "pedestrian": 6, "cyclist": 6, "static": 4}


def _to_ego_xy(points_world: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    pts = np.zeros((len(points_world), 3))
    pts[:, :2] = points_world[:, :2]
    return world_to_ego(pts, ego_pose)[:, :2]


def bev_semantic_map(road_map: RoadMap, world: WorldState, size: tuple[int, int], range_m: float) -> np.ndarray:
    """(H, W) uint8 class map around the ego of ``world``."""
    h, w = (int(v) for v in size)
    bev = np.zeros((h, w), dtype=np.uint8)
    ego = world.ego_pose
    reach = 1.5 * range_m  # map elements farther than this from the ego cannot reach the raster

    def near(points: np.ndarray) -> bool:
        return bool(np.min(np.hypot(points[:, 0] - ego[0], points[:, 1] - ego[1])) < reach)

    def pixels(points: np.ndarray) -> np.ndarray:
        return np.round(bev_pixels(_to_ego_xy(points, ego), (h, w), range_m)).astype(np.int32).reshape(-1, 1, 2)

    lanes = [lane for lane in road_map.lanes if near(lane.polygon)]
    if lanes:
        outlines = [pixels(lane.polygon) for lane in lanes]
        cv2.fillPoly(bev, outlines, 1)
        cv2.polylines(bev, outlines, True, 1, thickness=1)  # closes the rounding gaps between adjacent lanes
    walkways = [p for p in road_map.walkways if near(p)]
    if walkways:
        cv2.fillPoly(bev, [pixels(p) for p in walkways], 2)
    if lanes:
        cv2.polylines(bev, [pixels(lane.centerline) for lane in lanes], False, 3, thickness=1)
    if world.num_agents:
        rel = world_to_ego(world.agent_poses, ego)
        for kind, cls in _KIND_TO_CLASS.items():
            sel = world.agent_kinds == AGENT_KINDS.index(kind)
            if sel.any():
                boxes = np.concatenate([rel[sel], world.agent_sizes[sel, :2]], axis=1)
                rasterize_boxes(bev, boxes, cls, range_m)
    return bev
