"""Scene types the PDM scorer works on: map geometry, logged agents, the ego state and the route.

Everything is in the world frame. Poses are (x, y, heading) of the *centre* of a box; time steps are ``DT`` apart
from the scene's t0. The simulator adapter builds these from MetaDrive; the scorer never imports the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

AGENT_KINDS_ALL = ("vehicle", "pedestrian", "cyclist", "static")


@dataclass
class Lane:
    """One lane: its area, its centreline (in driving direction) and an optional speed limit [m/s]."""

    lane_id: str
    polygon: shapely.Polygon
    centerline: shapely.LineString
    speed_limit: float | None = None


def make_lane(
    lane_id: str,
    polygon: shapely.Polygon | shapely.MultiPolygon,
    centerline: shapely.LineString,
    speed_limit: float | None = None,
) -> Lane:
    """Build a :class:`Lane`, repairing an invalid polygon with ``buffer(0)`` (MetaDrive emits some)."""
    if not isinstance(centerline, shapely.LineString) or centerline.is_empty:
        raise ValueError(f"lane {lane_id!r}: centerline must be a non-empty LineString, got {centerline!r}")
    fixed = polygon if polygon.is_valid else polygon.buffer(0)
    if isinstance(fixed, shapely.MultiPolygon):
        fixed = max(fixed.geoms, key=lambda g: g.area)
    if not isinstance(fixed, shapely.Polygon) or fixed.is_empty:
        raise ValueError(f"lane {lane_id!r}: polygon is empty or not a polygon after repair")
    if speed_limit is not None and not speed_limit > 0:
        raise ValueError(f"lane {lane_id!r}: speed_limit must be positive, got {speed_limit}")
    return Lane(lane_id, fixed, centerline, None if speed_limit is None else float(speed_limit))


@dataclass
class MapGeometry:
    """Lanes and the drivable area (union of lane polygons plus shoulders), with lazily built spatial indexes."""

    lanes: list[Lane]
    drivable_area: shapely.Polygon | shapely.MultiPolygon
    _lane_tree: shapely.STRtree | None = field(default=None, init=False, repr=False, compare=False)
    _crossing: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def lane_tree(self) -> shapely.STRtree:
        """STRtree over the lane polygons (prepared); tree index i is ``lanes[i]``."""
        if self._lane_tree is None:
            polygons = [lane.polygon for lane in self.lanes]
            shapely.prepare(polygons)
            self._lane_tree = shapely.STRtree(polygons)
        return self._lane_tree

    def lanes_touching(self, geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(geometry index, lane index) pairs of geometries (points or polygons) that intersect a lane polygon.

        Bounding boxes from the STRtree first, then the exact test with the lane polygon prepared, which is much
        faster than the tree's own predicate on lanes with many vertices.
        """
        tree = self.lane_tree
        geom_idx, lane_idx = tree.query(geometries)
        if len(geom_idx):
            keep = shapely.intersects(tree.geometries[lane_idx], np.asarray(geometries)[geom_idx])
            geom_idx, lane_idx = geom_idx[keep], lane_idx[keep]
        return geom_idx, lane_idx

    @property
    def prepared_drivable_area(self) -> shapely.Polygon | shapely.MultiPolygon:
        """The drivable area, prepared in place (shapely 2) so repeated point tests are fast."""
        if not shapely.is_prepared(self.drivable_area):
            shapely.prepare(self.drivable_area)
        return self.drivable_area

    @property
    def crossing_lanes(self) -> np.ndarray:
        """(L, L) bool: lanes whose polygons overlap and whose centrelines cross (an intersection)."""
        if self._crossing is None:
            n = len(self.lanes)
            crossing = np.zeros((n, n), dtype=bool)
            if n:
                left, right = self.lanes_touching(np.array([lane.polygon for lane in self.lanes], dtype=object))
                keep = left < right
                for i, j in zip(left[keep], right[keep]):
                    if self.lanes[i].centerline.crosses(self.lanes[j].centerline):
                        crossing[i, j] = crossing[j, i] = True
            self._crossing = crossing
        return self._crossing

    def lanes_at(self, point: shapely.Point | tuple[float, float] | np.ndarray) -> list[Lane]:
        """Lanes whose polygon covers ``point`` (boundary included)."""
        geom = point if isinstance(point, shapely.Point) else shapely.Point(*np.asarray(point, dtype=float)[:2])
        return [self.lanes[i] for i in self.lanes_touching(np.array([geom], dtype=object))[1]]

    def contains_xy(self, xy: np.ndarray) -> np.ndarray:
        """(...,) bool: whether each (..., 2) point lies in the drivable area (boundary included)."""
        xy = np.asarray(xy, dtype=np.float64)
        return shapely.intersects_xy(self.prepared_drivable_area, xy[..., 0], xy[..., 1])

    def speed_limit_at(self, point: np.ndarray) -> float | None:
        """Lowest speed limit among the lanes at ``point``, or None when no lane there has one."""
        limits = [lane.speed_limit for lane in self.lanes_at(point) if lane.speed_limit is not None]
        return min(limits) if limits else None


def build_map(lanes: list[Lane], shoulders: list[shapely.Polygon] | None = None) -> MapGeometry:
    """Map whose drivable area is the union of the (valid) lane polygons and optional shoulder polygons."""
    if not lanes:
        raise ValueError("a map needs at least one lane")
    ids = [lane.lane_id for lane in lanes]
    if len(set(ids)) != len(ids):
        raise ValueError("lane ids must be unique")
    parts = [lane.polygon for lane in lanes] + [s if s.is_valid else s.buffer(0) for s in shoulders or []]
    return MapGeometry(list(lanes), shapely.union_all(parts))


@dataclass
class AgentTrack:
    """A logged (non-reactive) agent: box size and its future from t0 at ``DT`` steps."""

    agent_id: str
    kind: str
    length: float
    width: float
    poses: np.ndarray  # (T, 3) x, y, heading
    velocities: np.ndarray  # (T, 2) world vx, vy
    valid: np.ndarray  # (T,) bool

    def __post_init__(self) -> None:
        if self.kind not in AGENT_KINDS_ALL:
            raise ValueError(f"agent {self.agent_id!r}: kind {self.kind!r} not in {AGENT_KINDS_ALL}")
        self.poses = np.asarray(self.poses, dtype=np.float64)
        self.velocities = np.asarray(self.velocities, dtype=np.float64)
        self.valid = np.asarray(self.valid, dtype=bool)
        n = self.poses.shape[0]
        if self.poses.shape != (n, 3) or self.velocities.shape != (n, 2) or self.valid.shape != (n,):
            raise ValueError(
                f"agent {self.agent_id!r}: expected poses (T,3), velocities (T,2), valid (T,); got "
                f"{self.poses.shape}, {self.velocities.shape}, {self.valid.shape}"
            )
        if not (self.length > 0 and self.width > 0):
            raise ValueError(f"agent {self.agent_id!r}: length and width must be positive")

    @property
    def num_steps(self) -> int:
        return int(self.poses.shape[0])


@dataclass
class EgoState:
    """Ego at one instant: centre pose (world), ego-frame velocity / acceleration, steering angle and yaw rate."""

    x: float
    y: float
    heading: float
    vx: float
    vy: float
    ax: float = 0.0
    ay: float = 0.0
    steering: float = 0.0
    yaw_rate: float = 0.0

    @property
    def pose(self) -> np.ndarray:
        return np.array([self.x, self.y, self.heading], dtype=np.float64)

    @property
    def speed(self) -> float:
        return float(np.hypot(self.vx, self.vy))


@dataclass
class ScoringScene:
    """Everything needed to score a plan made at t0: map, route, ego, and the agents' logged futures."""

    scene_id: str
    map: MapGeometry
    route: shapely.LineString
    ego: EgoState
    agents: list[AgentTrack]
    ego_length: float = 4.5
    ego_width: float = 1.9
    wheel_base: float = 2.7
