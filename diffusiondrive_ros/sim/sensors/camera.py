"""Three pinhole cameras rendered with OpenCV from the simulator state: fast, deterministic, no GPU, no assets.

MetaDrive's GL renderer is far too slow on a CPU-only machine, so the images are drawn directly: sky and terrain,
lane surfaces, walkways, painted lines (solid / broken, white / yellow) and traffic participants as shaded 3D boxes.
Everything is a polygon on the ground or a box face; each is clipped against the near plane before projection, and
boxes are painted far to near with back faces culled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..map_adapter import RoadMap
from ..world import AGENT_KINDS, WorldState

CAMERA_NAMES = ("left_front", "front", "right_front")
_SUBPIXEL_BITS = 3
_SUBPIXEL = float(1 << _SUBPIXEL_BITS)

SKY_TOP = np.array([110, 160, 225], dtype=np.float32)
SKY_HORIZON = np.array([200, 220, 240], dtype=np.float32)
TERRAIN = (96, 118, 80)
ROAD = (82, 82, 86)
JUNCTION = (88, 88, 92)
WALKWAY = (150, 146, 138)
LINE_WHITE = (235, 235, 235)
LINE_YELLOW = (230, 190, 40)
VEHICLE_PALETTE = ((180, 40, 40), (40, 80, 170), (200, 200, 205), (30, 30, 35), (60, 130, 70), (210, 160, 40),
                   (120, 120, 130), (150, 60, 140))
KIND_COLORS = {"pedestrian": (220, 120, 60), "cyclist": (60, 170, 200), "static": (240, 120, 20)}
LINE_WIDTH_M = 0.15
DASH_ON_M, DASH_OFF_M = 3.0, 3.0  # broken lines: painted / gap lengths


@dataclass(frozen=True)
class CameraRig:
    """Intrinsics and extrinsics of the three cameras (left-front, front, right-front) in the ego frame.

    Defaults follow NAVSIM's front cameras at half resolution: 16:9, HFOV 64 deg, side cameras yawed +-55 deg.
    """

    width: int = 960
    height: int = 540
    hfov_deg: float = 64.0
    yaws_deg: tuple[float, float, float] = (55.0, 0.0, -55.0)  # left-front, front, right-front (left = positive)
    mount_x_m: float = 1.0  # forward of the ego centre
    mount_height_m: float = 1.6
    near_m: float = 0.5
    max_distance_m: float = 120.0  # scene elements beyond this are not drawn

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 9:
            raise ValueError(f"camera size must be at least 16x9, got {self.width}x{self.height}")
        if not 1.0 < self.hfov_deg < 179.0:
            raise ValueError(f"hfov_deg must be in (1, 179), got {self.hfov_deg}")
        if len(self.yaws_deg) != 3:
            raise ValueError(f"expected 3 camera yaws, got {self.yaws_deg}")

    @property
    def focal_px(self) -> float:
        return 0.5 * self.width / np.tan(np.deg2rad(self.hfov_deg) / 2.0)

    def intrinsics(self) -> np.ndarray:
        """3x3 pinhole matrix K (square pixels, principal point at the image centre)."""
        f = self.focal_px
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]])

    def ego_to_camera(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) with p_cam = R @ (p_ego - t); camera axes x right, y down, z forward (OpenCV)."""
        yaw = np.deg2rad(self.yaws_deg[index])
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        up = np.array([0.0, 0.0, 1.0])
        rot = np.stack([-left, -up, forward])
        return rot, np.array([self.mount_x_m, 0.0, self.mount_height_m])


@dataclass
class _StaticScene:
    """Ground polygons of the map, prepared once per map: each as (K,2) world points with a bounding circle."""

    polygons: list[np.ndarray] = field(default_factory=list)
    colors: list[tuple[int, int, int]] = field(default_factory=list)
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    radii: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _dash_quads(polyline: np.ndarray, broken: bool) -> list[np.ndarray]:
    """Thin ground quads (4,2) covering a painted line, split into dashes when ``broken``."""
    seg = np.diff(polyline, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    s = np.concatenate([[0.0], np.cumsum(seg_len)])
    if s[-1] < 1e-6:
        return []
    if broken:
        period = DASH_ON_M + DASH_OFF_M
        starts = np.arange(0.0, s[-1], period)
        intervals = [(a, min(a + DASH_ON_M, s[-1])) for a in starts]
    else:
        # Solid lines: pieces of ~5 m so that a quad follows curves and is clipped cheaply.
        n = max(1, int(np.ceil(s[-1] / 5.0)))
        edges = np.linspace(0.0, s[-1], n + 1)
        intervals = list(zip(edges[:-1], edges[1:]))
    x = lambda q: np.interp(q, s, polyline[:, 0])  # noqa: E731
    y = lambda q: np.interp(q, s, polyline[:, 1])  # noqa: E731
    quads = []
    for a, b in intervals:
        if b - a < 0.2:
            continue
        p0, p1 = np.array([x(a), y(a)]), np.array([x(b), y(b)])
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * (LINE_WIDTH_M / 2.0)
        quads.append(np.stack([p0 + n, p1 + n, p1 - n, p0 - n]))
    return quads


def prepare_static_scene(road_map: RoadMap) -> _StaticScene:
    """Ground polygons in painting order: lanes, walkways, painted lines."""
    scene = _StaticScene()
    for lane in road_map.lanes:
        scene.polygons.append(lane.polygon)
        scene.colors.append(JUNCTION if lane.in_junction else ROAD)
    for walkway in road_map.walkways:
        scene.polygons.append(walkway)
        scene.colors.append(WALKWAY)
    for line in road_map.lines:
        color = LINE_YELLOW if line.yellow else LINE_WHITE
        for quad in _dash_quads(line.polyline, line.broken):
            scene.polygons.append(quad)
            scene.colors.append(color)
    if scene.polygons:
        scene.centres = np.array([p.mean(axis=0) for p in scene.polygons])
        scene.radii = np.array([np.max(np.hypot(*(p - c).T)) for p, c in zip(scene.polygons, scene.centres)])
    return scene


def clip_near(points: np.ndarray, near: float) -> np.ndarray:
    """Clip a closed polygon (K,3) in camera coordinates against the plane z = near (Sutherland-Hodgman)."""
    z = points[:, 2]
    inside = z >= near
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    nxt = np.roll(points, -1, axis=0)
    z_next = nxt[:, 2]
    crosses = inside != (z_next >= near)
    t = np.where(crosses, (near - z) / np.where(crosses, z_next - z, 1.0), 0.0)
    cut = points + t[:, None] * (nxt - points)
    out = np.stack([points, cut], axis=1)  # (K, 2, 3): the vertex, then the crossing of its outgoing edge
    keep = np.stack([inside, crosses], axis=1)
    return out[keep]


class CameraRenderer:
    """Renders the three cameras for one map; build once per map, call :meth:`render` per frame."""

    def __init__(self, road_map: RoadMap, rig: CameraRig | None = None) -> None:
        self.rig = rig or CameraRig()
        self.scene = prepare_static_scene(road_map)
        self._k = self.rig.intrinsics()
        self._background = self._make_background()
        self._extrinsics = [self.rig.ego_to_camera(i) for i in range(3)]
        self._vehicle_colors: dict[str, tuple[int, int, int]] = {}

    def agent_color(self, agent_id: str, kind: str) -> tuple[int, int, int]:
        """Colour of an agent: vehicles take palette colours in order of first appearance (MetaDrive's ids are
        random UUIDs, the order of appearance is seeded), so images are deterministic per seed."""
        if kind in KIND_COLORS:
            return KIND_COLORS[kind]
        if agent_id not in self._vehicle_colors:
            self._vehicle_colors[agent_id] = VEHICLE_PALETTE[len(self._vehicle_colors) % len(VEHICLE_PALETTE)]
        return self._vehicle_colors[agent_id]

    def _make_background(self) -> np.ndarray:
        h, w = self.rig.height, self.rig.width
        horizon = int(round(self._k[1, 2]))
        img = np.empty((h, w, 3), dtype=np.uint8)
        rows = np.linspace(0.0, 1.0, max(horizon, 1))[:, None]
        sky = SKY_TOP[None] * (1.0 - rows) + SKY_HORIZON[None] * rows
        img[:horizon] = sky[:, None, :].astype(np.uint8)
        img[horizon:] = TERRAIN
        return img

    def _project(self, cam_points: np.ndarray) -> np.ndarray:
        """(K,3) camera points with z >= near -> (K,2) int32 sub-pixel coordinates for cv2.fillPoly(shift=...)."""
        f, cx, cy = self._k[0, 0], self._k[0, 2], self._k[1, 2]
        uv = np.empty((len(cam_points), 2))
        uv[:, 0] = cx + f * cam_points[:, 0] / cam_points[:, 2]
        uv[:, 1] = cy + f * cam_points[:, 1] / cam_points[:, 2]
        limit = 64.0 * max(self.rig.width, self.rig.height)
        return np.round(np.clip(uv, -limit, limit) * _SUBPIXEL).astype(np.int32)

    def render(self, world: WorldState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(left-front, front, right-front) images, each (height, width, 3) uint8 RGB."""
        ego = world.ego_pose
        c, s = np.cos(ego[2]), np.sin(ego[2])
        to_ego = np.array([[c, s], [-s, c]])
        near_idx = np.flatnonzero(
            np.hypot(*(self.scene.centres - ego[:2]).T) - self.scene.radii < self.rig.max_distance_m
        ) if len(self.scene.polygons) else np.zeros(0, dtype=int)
        ground = [(self.scene.polygons[i] - ego[:2]) @ to_ego.T for i in near_idx]
        colors = [self.scene.colors[i] for i in near_idx]
        boxes = _agent_boxes_ego(world, to_ego, self.rig.max_distance_m, self.agent_color)
        return tuple(self._render_one(i, ground, colors, boxes) for i in range(3))  # type: ignore[return-value]

    def _render_one(self, index: int, ground: list[np.ndarray], colors: list, boxes: list) -> np.ndarray:
        rot, t = self._extrinsics[index]
        img = self._background.copy()
        near = self.rig.near_m
        for poly2d, color in zip(ground, colors):
            pts = np.concatenate([poly2d, np.zeros((len(poly2d), 1))], axis=1)
            cam = (pts - t) @ rot.T
            if cam[:, 2].max() < near:
                continue
            clipped = clip_near(cam, near)
            if len(clipped) >= 3:
                cv2.fillPoly(img, [self._project(clipped)], color, cv2.LINE_8, _SUBPIXEL_BITS)
        cam_pos = t
        order = sorted(boxes, key=lambda b: -float(np.hypot(*(b[0][:, :2].mean(axis=0) - cam_pos[:2]))))
        for corners, color in order:
            self._draw_box(img, corners, color, rot, t)
        return img

    def _draw_box(self, img: np.ndarray, corners: np.ndarray, color, rot: np.ndarray, t: np.ndarray) -> None:
        """Paint the camera-facing faces of a box given its 8 ego-frame corners (bottom 0-3, top 4-7)."""
        near = self.rig.near_m
        centre = corners.mean(axis=0)
        for face, shade in _BOX_FACES:
            pts = corners[list(face)]
            face_centre = pts.mean(axis=0)
            normal = face_centre - centre
            if np.dot(normal, t - face_centre) <= 0.0:
                continue  # back face
            cam = (pts - t) @ rot.T
            clipped = clip_near(cam, near)
            if len(clipped) < 3:
                continue
            shaded = tuple(int(min(255, ch * shade)) for ch in color)
            cv2.fillPoly(img, [self._project(clipped)], shaded, cv2.LINE_8, _SUBPIXEL_BITS)


# Faces of a box as corner indices (outward order does not matter for painting) and their brightness.
_BOX_FACES = (
    ((4, 5, 6, 7), 1.15),  # top
    ((0, 1, 5, 4), 0.95),  # front
    ((2, 3, 7, 6), 0.85),  # rear
    ((1, 2, 6, 5), 0.70),  # right
    ((3, 0, 4, 7), 0.75),  # left
)


def _agent_boxes_ego(world: WorldState, to_ego: np.ndarray, max_distance: float, color_of) -> list:
    """(8,3) ego-frame corners and colour of every agent within ``max_distance``."""
    boxes = []
    for i, agent_id in enumerate(world.agent_ids):
        rel = to_ego @ (world.agent_poses[i, :2] - world.ego_pose[:2])
        if np.hypot(*rel) > max_distance:
            continue
        heading = world.agent_poses[i, 2] - world.ego_pose[2]
        length, width, height = world.agent_sizes[i]
        hl, hw = length / 2.0, width / 2.0
        local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        c, s = np.cos(heading), np.sin(heading)
        xy = local @ np.array([[c, s], [-s, c]]) + rel
        bottom = np.concatenate([xy, np.zeros((4, 1))], axis=1)
        top = np.concatenate([xy, np.full((4, 1), height)], axis=1)
        kind = AGENT_KINDS[int(world.agent_kinds[i])]
        boxes.append((np.concatenate([bottom, top]), color_of(agent_id, kind)))
    return boxes
