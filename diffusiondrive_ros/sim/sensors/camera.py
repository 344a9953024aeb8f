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
class _Layer:
    """One colour of the ground, as disjoint rings (exteriors and holes) in world coordinates.

    The rings of a layer never overlap (they are a union cut into tiles), so one even-odd ``cv2.fillPoly`` call
    paints the whole layer; ``starts`` indexes each ring's first point in ``points``.
    """

    color: tuple[int, int, int]
    points: np.ndarray  # (P, 2)
    starts: np.ndarray  # (R,) int
    centres: np.ndarray  # (R, 2) bounding circle of each ring
    radii: np.ndarray  # (R,)

    @property
    def num_rings(self) -> int:
        return len(self.starts)


@dataclass
class _StaticScene:
    """The map's ground layers in painting order (road, junctions, walkways, white lines, yellow lines)."""

    layers: list[_Layer] = field(default_factory=list)


TILE_M = 30.0  # unions are cut into tiles this size so far-away parts are culled cheaply


def _line_strip(polyline: np.ndarray, a: float, b: float, s: np.ndarray) -> np.ndarray | None:
    """Ground polygon (K,2) of a painted line between arc lengths a and b, following the polyline's bends."""
    inner = (s > a) & (s < b)
    q = np.concatenate([[a], s[inner], [b]])
    pts = np.stack([np.interp(q, s, polyline[:, 0]), np.interp(q, s, polyline[:, 1])], -1)
    d = np.gradient(pts, axis=0) if len(pts) > 2 else np.repeat(pts[1:] - pts[:1], len(pts), axis=0)
    norm = np.hypot(d[:, 0], d[:, 1])[:, None]
    if not (norm > 1e-9).all():
        return None
    n = np.stack([-d[:, 1], d[:, 0]], -1) / norm * (LINE_WIDTH_M / 2.0)
    return np.concatenate([pts + n, (pts - n)[::-1]])


def _line_polygons(polyline: np.ndarray, broken: bool) -> list[np.ndarray]:
    """Ground polygons covering a painted line: one strip for a solid line, one per dash for a broken one."""
    seg = np.diff(polyline, axis=0)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    if s[-1] < 1e-6:
        return []
    if broken:
        intervals = [(a, min(a + DASH_ON_M, s[-1])) for a in np.arange(0.0, s[-1], DASH_ON_M + DASH_OFF_M)]
    else:
        intervals = [(0.0, s[-1])]
    strips = [_line_strip(polyline, a, b, s) for a, b in intervals if b - a >= 0.2]
    return [p for p in strips if p is not None]


def _tiled_rings(polygons: list, tile_m: float = TILE_M) -> list[np.ndarray]:
    """Rings (exteriors and holes) of the union of ``polygons`` cut into a square grid; disjoint by construction."""
    import shapely

    valid = [p if p.is_valid else p.buffer(0) for p in polygons]
    union = shapely.union_all([p for p in valid if not p.is_empty])
    if union.is_empty:
        return []
    x0, y0, x1, y1 = union.bounds
    xs = np.arange(np.floor(x0 / tile_m), np.ceil(x1 / tile_m) + 1) * tile_m
    ys = np.arange(np.floor(y0 / tile_m), np.ceil(y1 / tile_m) + 1) * tile_m
    cells = [shapely.box(x, y, x + tile_m, y + tile_m) for x in xs[:-1] for y in ys[:-1]]
    pieces = shapely.intersection(union, np.array(cells, dtype=object))
    rings = []
    for piece in pieces:
        for poly in shapely.get_parts(piece):
            if not isinstance(poly, shapely.Polygon) or poly.is_empty or poly.area < 1e-4:
                continue
            for ring in (poly.exterior, *poly.interiors):
                coords = np.asarray(ring.coords, dtype=np.float64)[:-1, :2]
                if len(coords) >= 3:
                    rings.append(coords)
    return rings


def _layer(color: tuple[int, int, int], polygons: list) -> _Layer | None:
    rings = _tiled_rings(polygons)
    if not rings:
        return None
    centres = np.array([r.mean(axis=0) for r in rings])
    radii = np.array([np.max(np.hypot(*(r - c).T)) for r, c in zip(rings, centres)])
    starts = np.cumsum([0] + [len(r) for r in rings[:-1]])
    return _Layer(color, np.concatenate(rings), starts.astype(np.int64), centres, radii)


def prepare_static_scene(road_map: RoadMap) -> _StaticScene:
    """Ground layers in painting order: lanes, junction lanes, walkways, white lines, yellow lines."""
    import shapely

    groups: dict[tuple[int, int, int], list] = {ROAD: [], JUNCTION: [], WALKWAY: [], LINE_WHITE: [], LINE_YELLOW: []}
    for lane in road_map.lanes:
        groups[JUNCTION if lane.in_junction else ROAD].append(shapely.Polygon(lane.polygon))
    for walkway in road_map.walkways:
        groups[WALKWAY].append(shapely.Polygon(walkway))
    for line in road_map.lines:
        groups[LINE_YELLOW if line.yellow else LINE_WHITE].extend(
            shapely.Polygon(p) for p in _line_polygons(line.polyline, line.broken))
    layers = [_layer(color, polys) for color, polys in groups.items() if polys]
    return _StaticScene([layer for layer in layers if layer is not None])


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
        ground = []
        for layer in self.scene.layers:
            near = np.hypot(*(layer.centres - ego[:2]).T) - layer.radii < self.rig.max_distance_m
            if near.any():
                ground.append((layer, (layer.points - ego[:2]) @ to_ego.T, near))
        boxes = _agent_boxes_ego(world, to_ego, self.rig.max_distance_m, self.agent_color)
        return tuple(self._render_one(i, ground, boxes) for i in range(3))  # type: ignore[return-value]

    def _render_one(self, index: int, ground: list, boxes: list) -> np.ndarray:
        rot, t = self._extrinsics[index]
        img = self._background.copy()
        for layer, points_ego, near_rings in ground:
            polys = self._layer_polygons(layer, points_ego, near_rings, rot, t)
            if polys:
                cv2.fillPoly(img, polys, layer.color, cv2.LINE_8, _SUBPIXEL_BITS)
        cam_pos = t
        order = sorted(boxes, key=lambda b: -float(np.hypot(*(b[0][:, :2].mean(axis=0) - cam_pos[:2]))))
        for corners, color in order:
            self._draw_box(img, corners, color, rot, t)
        return img

    def _layer_polygons(self, layer: _Layer, points_ego: np.ndarray, near_rings: np.ndarray, rot: np.ndarray,
                        t: np.ndarray) -> list[np.ndarray]:
        """Projected rings of a layer: rings fully in front of the camera in one vectorised pass, the few that
        cross the near plane clipped one by one, rings behind it dropped."""
        near = self.rig.near_m
        cam = (np.concatenate([points_ego, np.zeros((len(points_ego), 1))], axis=1) - t) @ rot.T
        z = cam[:, 2]
        z_min = np.minimum.reduceat(z, layer.starts)
        z_max = np.maximum.reduceat(z, layer.starts)
        front = near_rings & (z_min >= near)
        crossing = near_rings & (z_min < near) & (z_max >= near)
        polys: list[np.ndarray] = []
        if front.any():
            projected = self._project(np.where(z[:, None] >= near, cam, near))
            rings = np.split(projected, layer.starts[1:])
            polys.extend(rings[i] for i in np.flatnonzero(front))
        if crossing.any():
            ends = np.append(layer.starts[1:], len(cam))
            for i in np.flatnonzero(crossing):
                clipped = clip_near(cam[layer.starts[i]:ends[i]], near)
                if len(clipped) >= 3:
                    polys.append(self._project(clipped))
        return polys

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
