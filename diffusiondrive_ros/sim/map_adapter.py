"""MetaDrive map -> plain geometry: a :class:`RoadMap` for sensors and rasters, a ``MapGeometry`` for the PDM score.

The road map is read once per episode from MetaDrive's ``get_map_features()``, the ScenarioNet map description, so
procedural maps and replayed scenarios go through the same code. Logged agent states become ``AgentTrack``s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from .world import AGENT_KINDS, WorldState

KMH_TO_MS = 1.0 / 3.6
ROUTE_SAMPLE_M = 1.0  # spacing of the route centreline's points


@dataclass(frozen=True)
class RoadLane:
    """A lane surface: its outline (K,2), its centreline (M,2) in driving direction, speed limit [m/s] or None."""

    lane_id: str
    polygon: np.ndarray
    centerline: np.ndarray
    speed_limit: float | None
    in_junction: bool


@dataclass(frozen=True)
class RoadLine:
    """A painted line (M,2): broken or solid, yellow or white."""

    polyline: np.ndarray
    broken: bool
    yellow: bool


@dataclass
class RoadMap:
    """The static scene: lanes, painted lines, walkways (sidewalks and crosswalks), world frame."""

    lanes: list[RoadLane]
    lines: list[RoadLine]
    walkways: list[np.ndarray] = field(default_factory=list)
    _drivable: shapely.Geometry | None = field(default=None, init=False, repr=False)

    @property
    def drivable_area(self) -> shapely.Geometry:
        """Union of the (repaired) lane polygons."""
        if self._drivable is None:
            self._drivable = shapely.union_all([_valid_polygon(lane.polygon) for lane in self.lanes])
        return self._drivable


def _valid_polygon(outline: np.ndarray) -> shapely.Geometry:
    poly = shapely.Polygon(np.asarray(outline, dtype=np.float64)[:, :2])
    return poly if poly.is_valid else poly.buffer(0)


def road_map_from_features(features: dict) -> RoadMap:
    """Build a :class:`RoadMap` from a ScenarioNet / MetaDrive map-feature dict (``map.get_map_features()``)."""
    lanes, lines, walkways = [], [], []
    for key in sorted(features, key=str):
        feat = features[key]
        kind = str(feat.get("type", ""))
        if kind.startswith("LANE"):
            polyline = np.asarray(feat.get("polyline", np.zeros((0, 2))), dtype=np.float64)[:, :2]
            polygon = feat.get("polygon")
            if polygon is None or len(polygon) < 3 or len(polyline) < 2:
                continue
            limit = feat.get("speed_limit_kmh")
            lanes.append(RoadLane(
                lane_id=str(key),
                polygon=np.asarray(polygon, dtype=np.float64)[:, :2],
                centerline=polyline,
                speed_limit=float(limit) * KMH_TO_MS if limit else None,
                in_junction=kind == "LANE_SURFACE_UNSTRUCTURE",
            ))
        elif "LINE" in kind and "polyline" in feat:
            polyline = np.asarray(feat["polyline"], dtype=np.float64)[:, :2]
            if len(polyline) >= 2:
                lines.append(RoadLine(polyline, broken="BROKEN" in kind, yellow="YELLOW" in kind))
        elif ("SIDEWALK" in kind or "CROSSWALK" in kind) and "polygon" in feat:
            polygon = np.asarray(feat["polygon"], dtype=np.float64)[:, :2]
            if len(polygon) >= 3:
                walkways.append(polygon)
    if not lanes:
        raise ValueError("the map has no lanes with a polygon and a centreline")
    return RoadMap(lanes, lines, walkways)


def read_road_map(env) -> RoadMap:
    """The current map of a MetaDrive env as a :class:`RoadMap` (call after ``reset``)."""
    return road_map_from_features(env.engine.current_map.get_map_features(interval=2))


def to_map_geometry(road_map: RoadMap):
    """``pdm.scene.MapGeometry`` of the road map: repaired lane polygons, centrelines, drivable-area union."""
    from ..pdm.scene import build_map, make_lane

    lanes = []
    for lane in road_map.lanes:
        polygon = _valid_polygon(lane.polygon)
        if polygon.is_empty:
            continue
        lanes.append(make_lane(lane.lane_id, polygon, shapely.LineString(lane.centerline), lane.speed_limit))
    return build_map(lanes)


# -- route ---------------------------------------------------------------------------------------------------------
def _dedupe(points: np.ndarray, min_step: float = 1e-3) -> np.ndarray:
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(points, axis=0), axis=1) > min_step
    return points[keep]


def route_lanes(env) -> list:
    """MetaDrive lane objects along the ego's navigation route, in driving order.

    Node networks (procedural maps) list road nodes: the ego keeps its starting lane index on each road (clamped to
    the road's lane count). Edge networks list lane ids directly. Replayed logs navigate along the logged ego
    trajectory and have no lane route: the result is empty.
    """
    from metadrive.component.road_network.node_road_network import NodeRoadNetwork

    nav = env.agent.navigation
    network = env.engine.current_map.road_network
    checkpoints = list(nav.checkpoints)
    if isinstance(network, NodeRoadNetwork):
        lane_idx = env.agent.lane_index[2] if env.agent.lane_index else 0
        lanes = []
        for start, end in zip(checkpoints[:-1], checkpoints[1:]):
            road_lanes = network.graph.get(start, {}).get(end)
            if road_lanes:
                lanes.append(road_lanes[min(lane_idx, len(road_lanes) - 1)])
        return lanes
    if checkpoints and all(isinstance(cp, str) for cp in checkpoints):
        return [network.get_lane(cp) for cp in checkpoints]
    return []  # trajectory navigation (replayed logs): no lane route; callers fall back to the logged path


def route_polyline(lanes: Sequence) -> np.ndarray:
    """(M,2) centreline through ``lanes`` sampled every ROUTE_SAMPLE_M metres."""
    if not lanes:
        raise ValueError("the route has no lanes")
    parts = [np.asarray(lane.get_polyline(ROUTE_SAMPLE_M), dtype=np.float64)[:, :2] for lane in lanes]
    return _dedupe(np.concatenate(parts, axis=0))


def route_centerline(env, fallback: np.ndarray | None = None) -> shapely.LineString:
    """The ego's route centreline as a LineString; ``fallback`` (M,2) (e.g. the logged ego path) if it has none."""
    lanes = route_lanes(env)
    if lanes:
        points = route_polyline(lanes)
    elif fallback is not None and len(fallback) >= 2:
        points = _dedupe(np.asarray(fallback, dtype=np.float64)[:, :2])
    else:
        raise ValueError("the ego has no navigation route and no fallback path was given")
    return shapely.LineString(points)


# -- agents --------------------------------------------------------------------------------------------------------
def agent_tracks(states: Sequence[WorldState], min_steps: int | None = None) -> list:
    """``pdm.scene.AgentTrack`` per agent over consecutive snapshots (0.1 s apart) starting at ``states[0]``.

    An agent that is absent from a snapshot is invalid there (pose copied from its nearest valid one). Tracks are
    padded to ``min_steps`` with invalid steps when fewer snapshots are given. Only agents present at t0 are kept.
    """
    from ..pdm.scene import AgentTrack

    if not states:
        raise ValueError("agent_tracks needs at least one snapshot")
    steps = max(len(states), min_steps or 0)
    first = states[0]
    tracks = []
    for i, agent_id in enumerate(first.agent_ids):
        poses = np.repeat(first.agent_poses[i][None], steps, axis=0)
        vels = np.zeros((steps, 2))
        valid = np.zeros(steps, dtype=bool)
        last_pose, last_vel = first.agent_poses[i], first.agent_velocities[i]
        for t, state in enumerate(states):
            j = _index_of(state, agent_id, hint=i)
            if j is None:
                poses[t], vels[t] = last_pose, 0.0
                continue
            last_pose, last_vel = state.agent_poses[j], state.agent_velocities[j]
            poses[t], vels[t], valid[t] = last_pose, last_vel, True
        poses[len(states):] = last_pose
        length, width = first.agent_sizes[i, :2]
        tracks.append(AgentTrack(agent_id, AGENT_KINDS[int(first.agent_kinds[i])], float(length), float(width),
                                 poses, vels, valid))
    return tracks


def _index_of(state: WorldState, agent_id: str, hint: int) -> int | None:
    if hint < state.num_agents and state.agent_ids[hint] == agent_id:
        return hint
    try:
        return state.agent_ids.index(agent_id)
    except ValueError:
        return None
