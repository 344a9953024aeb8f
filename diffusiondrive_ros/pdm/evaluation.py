"""Scene-level precomputation and the evaluation of one tracked ego trajectory on every sub-metric.

Shared by the scorer (score.py) and the reference planner (pdm_closed.py), which both evaluate tracked
trajectories on the same scene many times: agent polygons and the tracker are built once per scene.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import NUM_STATES, TTC_PROJECTION_STEPS
from .metrics import (
    AgentGeometry,
    CollisionResult,
    ComfortResult,
    TTCResult,
    agent_geometry,
    comfort,
    drivable_area_compliance,
    ego_areas,
    ego_footprint,
    no_at_fault_collision,
    route_progress,
    time_to_collision,
)
from .scene import ScoringScene
from .tracker import LQRTracker, TrackedTrajectory, TrackerParams


@dataclass
class ScoringContext:
    """A scene with what every evaluation on it reuses."""

    scene: ScoringScene
    agents: AgentGeometry
    tracker: LQRTracker


def prepare_scene(scene: ScoringScene, tracker_params: TrackerParams | None = None) -> ScoringContext:
    """Build agent polygons (over the horizon plus the TTC projection) and a tracker with the scene's wheel base."""
    steps = NUM_STATES + max(TTC_PROJECTION_STEPS)
    available = max((agent.num_steps for agent in scene.agents), default=0)
    params = tracker_params or TrackerParams(wheel_base=scene.wheel_base)
    return ScoringContext(scene, agent_geometry(scene.agents, min(steps, max(available, 1))), LQRTracker(params))


@dataclass
class TrajectoryMetrics:
    """Every sub-metric but EP (which needs the reference planner) for one tracked trajectory."""

    nc: CollisionResult
    dac: float
    dac_time_s: float | None
    ttc: TTCResult
    comfort: ComfortResult
    progress: float  # [m] along the route

    @property
    def multiplier(self) -> float:
        """NC * DAC, the multiplicative part of PDMS."""
        return self.nc.score * self.dac


def evaluate_tracked(context: ScoringContext, tracked: TrackedTrajectory) -> TrajectoryMetrics:
    """NC, DAC, TTC, comfort and route progress of one tracked trajectory (poses (T, 3), box centres)."""
    scene = context.scene
    footprint = ego_footprint(tracked.poses, scene.ego_length, scene.ego_width)
    areas = ego_areas(scene.map, footprint)
    nc = no_at_fault_collision(footprint, tracked.speeds, areas, context.agents)
    dac, dac_time = drivable_area_compliance(areas)
    ttc = time_to_collision(footprint, tracked.speeds, areas, context.agents, nc.collided_ids)
    return TrajectoryMetrics(
        nc=nc,
        dac=dac,
        dac_time_s=dac_time,
        ttc=ttc,
        comfort=comfort(tracked),
        progress=route_progress(scene.route, tracked.poses),
    )
