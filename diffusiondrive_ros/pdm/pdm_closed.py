"""PDM-Closed style reference planner: route-following proposals x IDM speeds, tracked and scored; best one wins.

Proposals: the route centreline shifted by a few lateral offsets, each driven by the Intelligent Driver Model (IDM)
along the path for 4 s towards a few target speeds (fractions of the lane speed limit), following the nearest logged
agent ahead on the path. Each proposal is tracked by the same LQR tracker and scored by the same metrics as a plan,
without EP: NC * DAC * (5 TTC + 2 C) / 7; ties go to the proposal with more route progress. The winner's progress
(times its NC * DAC) is the EP reference; its tracked poses are also usable as a baseline plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from .constants import DT, NUM_STATES, WEIGHT_COMFORT, WEIGHT_TTC
from .evaluation import ScoringContext, TrajectoryMetrics, evaluate_tracked, prepare_scene
from .scene import ScoringScene
from .tracker import TrackedTrajectory
from .trajectory import sample_plan


@dataclass(frozen=True)
class PDMClosedParams:
    lateral_offsets: tuple[float, ...] = (-1.0, 0.0, 1.0)  # [m], positive to the left of the route
    speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    default_speed_limit: float = 15.0  # [m/s] where the lanes under the ego have none
    idm_max_accel: float = 1.5  # [m/s^2]
    idm_comfort_decel: float = 3.0  # [m/s^2]
    idm_max_decel: float = 8.0  # [m/s^2] hard clip of the IDM output
    idm_min_gap: float = 1.0  # [m]
    idm_headway: float = 1.5  # [s]
    idm_exponent: float = 4.0
    route_extension: float = 200.0  # [m] the route is extended straight at both ends so proposals never run out


@dataclass
class Proposal:
    lateral_offset: float
    target_speed: float
    reference: np.ndarray  # (NUM_STATES, 3) world poses fed to the tracker
    tracked: TrackedTrajectory
    metrics: TrajectoryMetrics
    score: float  # NC * DAC * (5 TTC + 2 C) / 7


@dataclass
class PDMClosedResult:
    best_index: int
    proposals: list[Proposal] = field(repr=False)
    trajectory_ego: np.ndarray  # (NUM_POSES, 3) the best proposal's tracked poses at 0.5 s, ego frame

    @property
    def best(self) -> Proposal:
        return self.proposals[self.best_index]

    @property
    def reference_progress(self) -> float:
        """EP reference: the best proposal's route progress weighted by its NC * DAC (as NAVSIM weights it)."""
        return self.best.metrics.progress * self.best.metrics.multiplier


def extend_line(line: shapely.LineString, length: float) -> shapely.LineString:
    """The line with straight extensions of ``length`` metres before its start and after its end."""
    coords = np.asarray(line.coords, dtype=np.float64)[:, :2]
    coords = coords[np.r_[True, np.any(np.diff(coords, axis=0) != 0, axis=1)]]
    if len(coords) < 2:
        raise ValueError("route must have two distinct points")
    head_dir = coords[0] - coords[1]
    tail_dir = coords[-1] - coords[-2]
    head = coords[0] + head_dir / np.linalg.norm(head_dir) * length
    tail = coords[-1] + tail_dir / np.linalg.norm(tail_dir) * length
    return shapely.LineString(np.vstack([head, coords, tail]))


def offset_path(route: shapely.LineString, offset: float) -> shapely.LineString:
    """Route shifted sideways by ``offset`` metres (positive = left), keeping its direction."""
    if offset == 0.0:
        return route
    shifted = shapely.offset_curve(route, offset, join_style="round")
    if isinstance(shifted, shapely.MultiLineString):
        shifted = max(shifted.geoms, key=lambda g: g.length)
    if shifted.is_empty:
        raise ValueError(f"cannot offset the route by {offset} m")
    return shifted


def path_poses(path: shapely.LineString, s: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Poses (..., 3) on ``path`` at arc lengths ``s``, heading from a central difference of +-step/2 metres."""
    s = np.asarray(s, dtype=np.float64)

    def at(arc: np.ndarray) -> np.ndarray:
        return shapely.get_coordinates(shapely.line_interpolate_point(path, arc.ravel())).reshape(s.shape + (2,))

    points, ahead, behind = at(s), at(s + step / 2), at(s - step / 2)
    d = ahead - behind
    return np.concatenate([points, np.arctan2(d[..., 1], d[..., 0])[..., None]], -1)


def _lead_agents(context: ScoringContext, path: shapely.LineString) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per agent and step: rear-bumper arc length on the path (inf when off the path), speed along the path."""
    agents = context.agents
    steps = min(agents.num_steps, NUM_STATES)
    n = len(agents.ids)
    rear_s = np.full((n, steps), np.inf)
    centre_s = np.full((n, steps), np.inf)
    speed_along = np.zeros((n, steps))
    if n == 0:
        return rear_s, centre_s, speed_along
    corridor = shapely.buffer(path, context.scene.ego_width / 2.0, cap_style="flat")
    shapely.prepare(corridor)
    valid = agents.valid[:, :steps]
    on_path = np.zeros_like(valid)
    on_path[valid] = shapely.intersects(corridor, agents.polygons[:, :steps][valid])
    if not on_path.any():
        return rear_s, centre_s, speed_along
    xy = agents.poses[:, :steps, :2][on_path]
    s = shapely.line_locate_point(path, shapely.points(xy))
    heading = path_poses(path, s)[:, 2]
    lengths = np.array([a.length for a in context.scene.agents])[np.nonzero(on_path)[0]]
    rel_heading = agents.poses[:, :steps, 2][on_path] - heading
    rear_s[on_path] = s - 0.5 * lengths * np.abs(np.cos(rel_heading))
    centre_s[on_path] = s
    speed_along[on_path] = agents.speeds[:, :steps][on_path] * np.cos(rel_heading)
    return rear_s, centre_s, speed_along


def idm_profile(
    s0: float,
    v0: float,
    target_speeds: np.ndarray,
    lead: tuple[np.ndarray, np.ndarray, np.ndarray],
    ego_length: float,
    params: PDMClosedParams,
) -> np.ndarray:
    """Arc lengths (S, NUM_STATES) of the ego centre driven by IDM towards each target speed behind the lead agents."""
    rear_s, centre_s, lead_speed = lead
    targets = np.maximum(np.asarray(target_speeds, dtype=np.float64), 0.1)
    s = np.full(targets.shape, s0, dtype=np.float64)
    v = np.full(targets.shape, max(v0, 0.0))
    out = np.empty((len(targets), NUM_STATES))
    out[:, 0] = s
    sqrt_ab = 2.0 * np.sqrt(params.idm_max_accel * params.idm_comfort_decel)
    for k in range(NUM_STATES - 1):
        accel = params.idm_max_accel * (1.0 - (v / targets) ** params.idm_exponent)
        if rear_s.shape[0] and rear_s.shape[1] > k:
            ahead = centre_s[:, k][:, None] > s[None, :]  # (A, S)
            gaps = np.where(ahead, rear_s[:, k][:, None] - (s[None, :] + 0.5 * ego_length), np.inf)
            lead_idx = np.argmin(gaps, axis=0)
            gap = gaps[lead_idx, np.arange(len(s))]
            has_lead = np.isfinite(gap)
            dv = v - lead_speed[lead_idx, k]
            desired = params.idm_min_gap + np.maximum(0.0, v * params.idm_headway + v * dv / sqrt_ab)
            interaction = (desired / np.maximum(gap, 1e-2)) ** 2
            accel = accel - np.where(has_lead, params.idm_max_accel * interaction, 0.0)
        accel = np.clip(accel, -params.idm_max_decel, params.idm_max_accel)
        v_next = np.maximum(v + accel * DT, 0.0)
        s = s + 0.5 * (v + v_next) * DT
        v = v_next
        out[:, k + 1] = s
    return out


def pdm_closed(
    scene: ScoringScene, context: ScoringContext | None = None, params: PDMClosedParams | None = None
) -> PDMClosedResult:
    """Run the reference planner on ``scene`` and return every proposal with the best one's index."""
    params = params or PDMClosedParams()
    context = context or prepare_scene(scene)
    ego = scene.ego
    speed_limit = scene.map.speed_limit_at(ego.pose[:2]) or params.default_speed_limit
    targets = np.array(params.speed_fractions) * speed_limit
    base = extend_line(scene.route, params.route_extension)
    references, settings = [], []
    for offset in params.lateral_offsets:
        path = offset_path(base, offset)
        s0 = float(shapely.line_locate_point(path, shapely.Point(ego.x, ego.y)))
        profile = idm_profile(s0, ego.vx, targets, _lead_agents(context, path), scene.ego_length, params)
        references.append(path_poses(path, profile))
        settings.extend((offset, float(t)) for t in targets)
    references = np.concatenate(references, 0)
    tracked = context.tracker.simulate_batch(ego, references)
    proposals = []
    for i, (offset, target) in enumerate(settings):
        item = tracked.item(i)
        metrics = evaluate_tracked(context, item)
        score = metrics.multiplier * (WEIGHT_TTC * metrics.ttc.score + WEIGHT_COMFORT * metrics.comfort.score)
        proposals.append(Proposal(offset, target, references[i], item, metrics, score / (WEIGHT_TTC + WEIGHT_COMFORT)))
    best = max(range(len(proposals)), key=lambda i: (round(proposals[i].score, 9), proposals[i].metrics.progress))
    return PDMClosedResult(best, proposals, sample_plan(proposals[best].tracked.poses, ego.pose))


def pdm_closed_plan(scene: ScoringScene) -> np.ndarray:
    """Baseline planner: the PDM-Closed trajectory as (NUM_POSES, 3) ego-frame poses at 0.5 s."""
    return pdm_closed(scene).trajectory_ego


def reference_progress(scene: ScoringScene, context: ScoringContext | None = None) -> float:
    """EP reference of ``scene``: the PDM-Closed winner's route progress times its NC * DAC."""
    return pdm_closed(scene, context).reference_progress
