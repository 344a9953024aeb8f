"""The PDM sub-metrics on a tracked ego trajectory: NC, DAC, TTC, EP (progress) and comfort.

Pure functions over numpy arrays and shapely geometry. Time index t is the simulation step (DT) from the scene's t0;
ego poses are box centres in the world frame. Definitions follow NAVSIM v1's PDM scorer; choices where this project
differs (no traffic lights, no lane direction, "intersection" from crossing centrelines) are noted where they apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import shapely
from scipy.signal import savgol_filter

from ..geometry import box_corners
from .constants import (
    AGENT_KINDS,
    AHEAD_ANGLE_DEG,
    BEHIND_ANGLE_DEG,
    DT,
    MAX_ABS_JERK,
    MAX_ABS_LAT_ACCEL,
    MAX_ABS_LON_JERK,
    MAX_ABS_YAW_ACCEL,
    MAX_ABS_YAW_RATE,
    MAX_LON_ACCEL,
    MIN_LON_ACCEL,
    NC_AGENT_SCORE,
    NC_STATIC_SCORE,
    STATIC_KIND,
    STOPPED_SPEED_THRESHOLD,
    TTC_MIN_EGO_SPEED,
    TTC_PROJECTION_STEPS,
)
from .scene import AgentTrack, MapGeometry
from .tracker import TrackedTrajectory

# ---------------------------------------------------------------------------------------------------------------
# Geometry shared by the metrics


@dataclass
class AgentGeometry:
    """Agents' boxes over time, padded to T steps (invalid / missing steps have no polygon)."""

    ids: list[str]
    kinds: list[str]
    poses: np.ndarray  # (A, T, 3)
    speeds: np.ndarray  # (A, T)
    valid: np.ndarray  # (A, T) bool
    polygons: np.ndarray  # (A, T) object: shapely Polygon or None
    radius: np.ndarray  # (A,) half diagonal, for cheap distance pre-filtering

    @property
    def num_steps(self) -> int:
        return int(self.valid.shape[1])


def agent_geometry(agents: list[AgentTrack], num_steps: int) -> AgentGeometry:
    """Vectorised agent polygons for the first ``num_steps`` steps (shorter tracks are padded as invalid)."""
    n = len(agents)
    poses = np.zeros((n, num_steps, 3))
    speeds = np.zeros((n, num_steps))
    valid = np.zeros((n, num_steps), dtype=bool)
    for i, agent in enumerate(agents):
        m = min(agent.num_steps, num_steps)
        poses[i, :m] = agent.poses[:m]
        speeds[i, :m] = np.hypot(agent.velocities[:m, 0], agent.velocities[:m, 1])
        valid[i, :m] = agent.valid[:m]
    lengths = np.array([a.length for a in agents], dtype=np.float64)
    widths = np.array([a.width for a in agents], dtype=np.float64)
    polygons = np.full((n, num_steps), None, dtype=object)
    if n:
        corners = box_corners(poses, lengths[:, None], widths[:, None])
        polygons[valid] = shapely.polygons(corners[valid])
    return AgentGeometry(
        ids=[a.agent_id for a in agents],
        kinds=[a.kind for a in agents],
        poses=poses,
        speeds=speeds,
        valid=valid,
        polygons=polygons,
        radius=0.5 * np.hypot(lengths, widths),
    )


@dataclass
class EgoFootprint:
    """Ego boxes along a trajectory: corners (T, 4, 2) FL, FR, RR, RL; polygons (T,)."""

    poses: np.ndarray
    corners: np.ndarray
    polygons: np.ndarray
    radius: float


def ego_footprint(poses: np.ndarray, length: float, width: float) -> EgoFootprint:
    corners = box_corners(poses, length, width)
    return EgoFootprint(poses, corners, shapely.polygons(corners), 0.5 * float(np.hypot(length, width)))


@dataclass
class EgoAreas:
    """Per step: the ego spans several lanes / has a corner off the drivable area / touches crossing lanes."""

    multiple_lanes: np.ndarray
    non_drivable: np.ndarray
    in_intersection: np.ndarray


def ego_areas(map_geometry: MapGeometry, footprint: EgoFootprint) -> EgoAreas:
    """Classify each ego footprint against the lanes and the drivable area.

    Multiple lanes (as NAVSIM): more than one lane polygon holds a corner, and no lane holds all four corners.
    Intersection (this project's choice, the map has no intersection polygons): the footprint touches two lanes whose
    centrelines cross.
    """
    corners = footprint.corners
    steps = corners.shape[0]
    flat = corners.reshape(-1, 2)
    non_drivable = ~map_geometry.contains_xy(flat).reshape(steps, 4).all(axis=1)
    n_lanes = len(map_geometry.lanes)
    corner_in_lane = np.zeros((steps * 4, n_lanes), dtype=bool)
    point_idx, lane_idx = map_geometry.lanes_touching(shapely.points(flat))
    corner_in_lane[point_idx, lane_idx] = True
    per_lane = corner_in_lane.reshape(steps, 4, n_lanes).sum(axis=1)  # (T, L) corners held by each lane
    multiple = ((per_lane > 0).sum(axis=1) > 1) & ~(per_lane == 4).any(axis=1)
    in_intersection = np.zeros(steps, dtype=bool)
    crossing = map_geometry.crossing_lanes
    if crossing.any():
        # Only the few lanes a footprint touches matter: test their pairs, not the (lanes x lanes) matrix per step.
        step_idx, lane_idx = map_geometry.lanes_touching(footprint.polygons)
        for t in np.unique(step_idx):
            lanes = lane_idx[step_idx == t]
            in_intersection[t] = bool(crossing[np.ix_(lanes, lanes)].any())
    return EgoAreas(multiple, non_drivable, in_intersection)


def _candidate_pairs(
    centres: np.ndarray, radius: float, agents: AgentGeometry, agent_steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, agent index) pairs whose bounding circles overlap; query q is compared at agent step[q]."""
    if not agents.ids:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    agent_xy = agents.poses[:, agent_steps, :2]  # (A, Q, 2)
    dist = np.linalg.norm(agent_xy - centres[None, :, :2], axis=-1)
    close = (dist <= agents.radius[:, None] + radius) & agents.valid[:, agent_steps]
    agent_idx, query_idx = np.nonzero(close)
    order = np.argsort(query_idx, kind="stable")
    return query_idx[order], agent_idx[order]


def _bearing_deg(ego_pose: np.ndarray, point: np.ndarray) -> float:
    """Absolute angle [deg] between the ego heading and the direction from the ego to ``point``."""
    dx, dy = point[0] - ego_pose[0], point[1] - ego_pose[1]
    angle = np.arctan2(dy, dx) - ego_pose[2]
    return float(np.degrees(np.abs((angle + np.pi) % (2 * np.pi) - np.pi)))


# ---------------------------------------------------------------------------------------------------------------
# NC: no at-fault collision


@dataclass
class CollisionResult:
    score: float = 1.0
    time_s: float | None = None  # first at-fault collision
    agent_id: str | None = None
    collision_type: str | None = None
    collided_ids: list[str] = field(default_factory=list)  # every agent hit (at fault or not)


def classify_collision(
    ego_pose: np.ndarray,
    ego_speed: float,
    front_bumper: shapely.LineString,
    agent_pose: np.ndarray,
    agent_speed: float,
    agent_polygon: shapely.Polygon,
) -> str:
    """nuPlan collision types, checked in this order: stopped_ego, stopped_track, active_rear, front, lateral."""
    if ego_speed <= STOPPED_SPEED_THRESHOLD:
        return "stopped_ego"
    if agent_speed <= STOPPED_SPEED_THRESHOLD:
        return "stopped_track"
    if _bearing_deg(ego_pose, agent_pose) > BEHIND_ANGLE_DEG:
        return "active_rear"
    if front_bumper.intersects(agent_polygon):
        return "active_front"
    return "active_lateral"


def is_at_fault(kind: str, multiple_lanes: bool, off_drivable: bool) -> bool:
    """NAVSIM's rule: a front collision, hitting a stopped agent, or a lateral collision while the ego spans several
    lanes or is off the drivable area; being hit from behind, or while stopped, is not the ego's fault."""
    return kind in ("active_front", "stopped_track") or (kind == "active_lateral" and (multiple_lanes or off_drivable))


def classify_contact(map_geometry: MapGeometry, ego_pose: np.ndarray, ego_speed: float, ego_length: float,
                     ego_width: float, agent_pose: np.ndarray, agent_speed: float,
                     agent_length: float, agent_width: float) -> tuple[str, bool]:
    """(collision type, at fault) of one contact between the ego and an agent, by the NC rule."""
    footprint = ego_footprint(np.asarray(ego_pose, dtype=np.float64)[None], ego_length, ego_width)
    areas = ego_areas(map_geometry, footprint)
    agent_polygon = shapely.Polygon(box_corners(np.asarray(agent_pose, dtype=np.float64), agent_length, agent_width))
    kind = classify_collision(footprint.poses[0], ego_speed, shapely.LineString(footprint.corners[0, :2]),
                              np.asarray(agent_pose, dtype=np.float64), agent_speed, agent_polygon)
    return kind, is_at_fault(kind, bool(areas.multiple_lanes[0]), bool(areas.non_drivable[0]))


def no_at_fault_collision(
    footprint: EgoFootprint, speeds: np.ndarray, areas: EgoAreas, agents: AgentGeometry
) -> CollisionResult:
    """NC: 0 for an at-fault collision with a vehicle / pedestrian / cyclist, 0.5 with a static object, else 1.

    At fault: a front collision, hitting a stopped agent, or a lateral collision while the ego spans several lanes or
    is off the drivable area. Each agent counts once (its first contact).
    """
    result = CollisionResult()
    steps = min(len(footprint.polygons), agents.num_steps)
    if steps == 0 or not agents.ids:
        return result
    time_idx = np.arange(steps)
    query, agent_idx = _candidate_pairs(footprint.poses[:steps], footprint.radius, agents, time_idx)
    if len(query) == 0:
        return result
    hits = shapely.intersects(footprint.polygons[query], agents.polygons[agent_idx, query])
    static = static_mask(agents)
    collided: set[str] = set()
    for t, a in zip(query[hits], agent_idx[hits]):
        agent_id = agents.ids[a]
        if agent_id in collided:
            continue
        collided.add(agent_id)
        result.collided_ids.append(agent_id)
        corners = footprint.corners[t]
        kind = classify_collision(
            footprint.poses[t],
            float(speeds[t]),
            shapely.LineString(corners[:2]),
            agents.poses[a, t],
            float(agents.speeds[a, t]),
            agents.polygons[a, t],
        )
        if is_at_fault(kind, bool(areas.multiple_lanes[t]), bool(areas.non_drivable[t])):
            result.score = min(result.score, NC_STATIC_SCORE if static[a] else NC_AGENT_SCORE)
            if result.time_s is None:  # diagnostics: the first at-fault collision
                result.time_s, result.agent_id, result.collision_type = float(t * DT), agent_id, kind
    return result


def static_mask(agents: AgentGeometry) -> np.ndarray:
    """(A,) True for agents scored as static objects (NC 0.5); anything not a road user is static."""
    return np.array([kind == STATIC_KIND or kind not in AGENT_KINDS for kind in agents.kinds], dtype=bool)


# ---------------------------------------------------------------------------------------------------------------
# DAC


def drivable_area_compliance(areas: EgoAreas) -> tuple[float, float | None]:
    """DAC: 0 if any footprint corner leaves the drivable area at any step (returns score, first time [s])."""
    bad = np.flatnonzero(areas.non_drivable)
    return (0.0, float(bad[0] * DT)) if len(bad) else (1.0, None)


# ---------------------------------------------------------------------------------------------------------------
# TTC


@dataclass
class TTCResult:
    score: float = 1.0
    time_s: float | None = None
    agent_id: str | None = None


def time_to_collision(
    footprint: EgoFootprint, speeds: np.ndarray, areas: EgoAreas, agents: AgentGeometry, ignore_ids: list[str]
) -> TTCResult:
    """TTC: 0 if the footprint projected at constant velocity 0 / 0.3 / 0.6 / 0.9 s ahead overlaps an agent (at that
    future step) which is ahead of the ego, or not behind it while the ego spans several lanes, is off-road or in an
    intersection. Ahead / behind are bearings from the projected ego pose to the agent at the same future step.
    Steps with ego speed < 5e-3 m/s are skipped, and so are agents already collided with (as NAVSIM).
    Projections past the agents' logged horizon are not checked.
    """
    result = TTCResult()
    if not agents.ids:
        return result
    steps = len(footprint.polygons)
    offsets = np.asarray(TTC_PROJECTION_STEPS)
    t_grid, m_grid = np.meshgrid(np.arange(steps), offsets, indexing="ij")  # (T, M)
    usable = (t_grid + m_grid < agents.num_steps) & (speeds[:, None] >= TTC_MIN_EGO_SPEED)
    t_q, m_q = t_grid[usable], m_grid[usable]
    if len(t_q) == 0:
        return result
    heading = footprint.poses[t_q, 2]
    shift = (speeds[t_q] * m_q * DT)[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1)
    centres = footprint.poses[t_q, :2] + shift
    query, agent_idx = _candidate_pairs(centres, footprint.radius, agents, t_q + m_q)
    if len(query) == 0:
        return result
    skip = np.isin(np.array(agents.ids, dtype=object)[agent_idx], np.array(ignore_ids, dtype=object))
    query, agent_idx = query[~skip], agent_idx[~skip]
    polygons = shapely.polygons(footprint.corners[t_q[query]] + shift[query][:, None, :])
    hits = shapely.intersects(polygons, agents.polygons[agent_idx, t_q[query] + m_q[query]])
    order = np.lexsort((m_q[query][hits], t_q[query][hits]))  # earliest step, then shortest projection
    for q, a in zip(query[hits][order], agent_idx[hits][order]):
        t, future = t_q[q], t_q[q] + m_q[q]
        projected = np.array([centres[q, 0], centres[q, 1], footprint.poses[t, 2]])
        bearing = _bearing_deg(projected, agents.poses[a, future])
        exposed = areas.multiple_lanes[t] or areas.non_drivable[t] or areas.in_intersection[t]
        if bearing < AHEAD_ANGLE_DEG or (exposed and bearing <= BEHIND_ANGLE_DEG):
            return TTCResult(0.0, float(t * DT), agents.ids[a])
    return result


# ---------------------------------------------------------------------------------------------------------------
# EP


def route_progress(route: shapely.LineString, poses: np.ndarray) -> float:
    """Distance [m] gained along the route centreline between the first and the last pose (may be negative)."""
    s = shapely.line_locate_point(route, shapely.points(poses[[0, -1], :2]))
    return float(s[1] - s[0])


def ego_progress_score(progress: float, multiplier: float, reference_progress: float, threshold: float) -> float:
    """EP as NAVSIM: own progress over the best progress among (own, reference), each weighted by its NC * DAC.

    When that best progress is below ``threshold`` metres, EP = 1 (0 for a plan whose NC * DAC is 0).
    """
    best = max(progress * multiplier, reference_progress)
    if best > threshold:
        return float(np.clip(progress / best, 0.0, 1.0))
    return 1.0 if multiplier > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Comfort

ACCEL_WINDOW = 7  # nuPlan smooths accelerations with a Savitzky-Golay window of 8 (odd here), order 2
DERIV_WINDOW = 15  # and differentiates with window 15, order 2 (order 3 for the second derivative)


@dataclass
class ComfortResult:
    score: float
    values: dict[str, float]  # worst value of each quantity over the horizon
    violations: list[str]


@lru_cache(maxsize=32)
def _savgol_operator(length: int, window: int, order: int, deriv: int) -> np.ndarray:
    """(length, length) matrix of the Savitzky-Golay filter (edges by polynomial fit), built once per setting.

    The filter is linear, so filtering the identity gives its matrix; applying it is one mat-vec instead of the
    per-call polynomial edge fits of scipy, which dominated the scoring time.
    """
    window = min(window, length if length % 2 else length - 1)
    if window <= order:
        raise ValueError(f"comfort needs at least {order + 2} states, got {length}")
    return savgol_filter(np.eye(length), window, order, deriv=deriv, delta=DT, axis=0)


def _savgol(values: np.ndarray, window: int, order: int, deriv: int = 0) -> np.ndarray:
    return _savgol_operator(len(values), window, order, deriv) @ values


def comfort(tracked: TrackedTrajectory) -> ComfortResult:
    """C: 1 only if every comfort limit holds at every step (Savitzky-Golay smoothed finite differences at DT)."""
    lon = _savgol(tracked.lon_accel, ACCEL_WINDOW, 2)
    lat = _savgol(tracked.lat_accel, ACCEL_WINDOW, 2)
    magnitude = np.hypot(lon, lat)
    jerk = _savgol(magnitude, DERIV_WINDOW, 2, deriv=1)
    lon_jerk = _savgol(lon, DERIV_WINDOW, 2, deriv=1)
    heading = np.unwrap(tracked.poses[:, 2])
    yaw_rate = _savgol(heading, DERIV_WINDOW, 2, deriv=1)
    yaw_accel = _savgol(heading, DERIV_WINDOW, 3, deriv=2)
    values = {
        "lon_accel_min": float(lon.min()),
        "lon_accel_max": float(lon.max()),
        "lat_accel": float(np.abs(lat).max()),
        "jerk": float(np.abs(jerk).max()),
        "lon_jerk": float(np.abs(lon_jerk).max()),
        "yaw_accel": float(np.abs(yaw_accel).max()),
        "yaw_rate": float(np.abs(yaw_rate).max()),
    }
    limits = {
        "lon_accel_min": values["lon_accel_min"] >= MIN_LON_ACCEL,
        "lon_accel_max": values["lon_accel_max"] <= MAX_LON_ACCEL,
        "lat_accel": values["lat_accel"] <= MAX_ABS_LAT_ACCEL,
        "jerk": values["jerk"] <= MAX_ABS_JERK,
        "lon_jerk": values["lon_jerk"] <= MAX_ABS_LON_JERK,
        "yaw_accel": values["yaw_accel"] <= MAX_ABS_YAW_ACCEL,
        "yaw_rate": values["yaw_rate"] <= MAX_ABS_YAW_RATE,
    }
    violations = [name for name, ok in limits.items() if not ok]
    return ComfortResult(0.0 if violations else 1.0, values, violations)
