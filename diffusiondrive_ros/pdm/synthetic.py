"""Hand-built scenes on a straight multi-lane road, for tests, demos and sanity checks of the scorer.

The road runs along +x from x = -100 m; lane 0 is centred on y = 0 and further lanes stack to the left (+y).
"""

from __future__ import annotations

import numpy as np
import shapely

from .constants import DT, NUM_STATES, TTC_PROJECTION_STEPS
from .scene import AgentTrack, EgoState, ScoringScene, build_map, make_lane

LANE_WIDTH = 3.5


def straight_road(
    num_lanes: int = 2,
    length: float = 400.0,
    lane_width: float = LANE_WIDTH,
    speed_limit: float | None = 15.0,
    start_x: float = -100.0,
):
    """A straight road of ``num_lanes`` parallel lanes, all driving towards +x; returns (map, route of lane 0)."""
    lanes = []
    for i in range(num_lanes):
        y = i * lane_width
        polygon = shapely.box(start_x, y - lane_width / 2, start_x + length, y + lane_width / 2)
        centerline = shapely.LineString([(start_x, y), (start_x + length, y)])
        lanes.append(make_lane(f"lane_{i}", polygon, centerline, speed_limit))
    return build_map(lanes), lanes[0].centerline


def arc_road_scene(
    radius: float = 60.0,
    ego_speed: float = 10.0,
    agents: list[AgentTrack] | None = None,
    num_lanes: int = 2,
    speed_limit: float | None = 12.0,
    scene_id: str = "arc",
) -> ScoringScene:
    """A left-turning road of constant curvature (centre at (0, radius)); the ego at the origin on lane 0, heading +x,
    already turning (yaw rate v / radius). Lane i has radius ``radius - i * LANE_WIDTH``."""
    angles = np.linspace(-0.5, 2.0, 200)
    lanes = []
    for i in range(num_lanes):
        r = radius - i * LANE_WIDTH
        centerline = shapely.LineString(np.column_stack([r * np.sin(angles), radius - r * np.cos(angles)]))
        polygon = centerline.buffer(LANE_WIDTH / 2, cap_style="flat")
        lanes.append(make_lane(f"lane_{i}", polygon, centerline, speed_limit))
    ego = EgoState(x=0.0, y=0.0, heading=0.0, vx=ego_speed, vy=0.0, yaw_rate=ego_speed / radius)
    return ScoringScene(scene_id, build_map(lanes), lanes[0].centerline, ego, list(agents or []))


def constant_velocity_agent(
    agent_id: str,
    x: float,
    y: float,
    heading: float,
    speed: float,
    kind: str = "vehicle",
    length: float = 4.5,
    width: float = 1.9,
    steps: int = NUM_STATES + max(TTC_PROJECTION_STEPS),
) -> AgentTrack:
    """An agent driving straight at constant speed from (x, y) along ``heading`` (speed 0: standing still)."""
    t = np.arange(steps) * DT
    direction = np.array([np.cos(heading), np.sin(heading)])
    xy = np.array([x, y]) + speed * t[:, None] * direction
    poses = np.column_stack([xy, np.full(steps, heading)])
    velocities = np.tile(speed * direction, (steps, 1))
    return AgentTrack(agent_id, kind, length, width, poses, velocities, np.ones(steps, dtype=bool))


def straight_road_scene(
    ego_speed: float = 10.0,
    agents: list[AgentTrack] | None = None,
    num_lanes: int = 2,
    ego_y: float = 0.0,
    scene_id: str = "straight",
) -> ScoringScene:
    """The ego at the origin heading +x on lane 0 of a straight road, with the given agents."""
    road, route = straight_road(num_lanes)
    ego = EgoState(x=0.0, y=ego_y, heading=0.0, vx=ego_speed, vy=0.0)
    return ScoringScene(scene_id, road, route, ego, list(agents or []))


def constant_speed_plan(speed: float, lateral: float = 0.0, accel: float = 0.0) -> np.ndarray:
    """(NUM_POSES, 3) ego-frame plan: straight at ``speed`` with constant ``accel`` (stopping at 0), ending
    ``lateral`` metres to the side via a smooth quintic lane change over the horizon."""
    from ..contract import NUM_POSES, POSE_INTERVAL_S

    t = np.arange(1, NUM_POSES + 1) * POSE_INTERVAL_S
    if accel < 0:
        t_stop = speed / -accel
        tc = np.minimum(t, t_stop)
        x = speed * tc + 0.5 * accel * tc**2
    else:
        x = speed * t + 0.5 * accel * t**2
    u = t / t[-1]
    y = lateral * (10 * u**3 - 15 * u**4 + 6 * u**5)
    dy_dt = lateral * (30 * u**2 - 60 * u**3 + 30 * u**4) / t[-1]
    dx_dt = np.maximum(np.gradient(x, t), 1e-3)
    return np.column_stack([x, y, np.arctan2(dy_dt, dx_dt)])
