"""The PDM score of planned trajectories: one scene (:func:`score_trajectory`) or a benchmark (:func:`score_scenes`).

A plan of 8 ego-frame poses is interpolated to DT, tracked by the LQR tracker on the kinematic bicycle from the
scene's ego state, then scored against the logged agents: PDMS = NC * DAC * (5 EP + 5 TTC + 2 C) / 12.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .constants import PROGRESS_DISTANCE_THRESHOLD, WEIGHT_COMFORT, WEIGHT_EP, WEIGHT_TTC
from .evaluation import ScoringContext, evaluate_tracked, prepare_scene
from .metrics import ego_progress_score
from .pdm_closed import pdm_closed
from .scene import ScoringScene
from .tracker import TrackedTrajectory
from .trajectory import interpolate_trajectory

SUB_SCORES = ("nc", "dac", "ttc", "ep", "comfort", "pdms")


def pdm_score(nc: float, dac: float, ep: float, ttc: float, comfort: float) -> float:
    """PDMS = NC * DAC * (5 EP + 5 TTC + 2 C) / 12."""
    weighted = WEIGHT_EP * ep + WEIGHT_TTC * ttc + WEIGHT_COMFORT * comfort
    return float(nc * dac * weighted / (WEIGHT_EP + WEIGHT_TTC + WEIGHT_COMFORT))


@dataclass
class PDMResult:
    """Sub-scores of one plan on one scene, with diagnostics saying why a sub-score dropped."""

    nc: float
    dac: float
    ttc: float
    ep: float
    comfort: float
    pdms: float
    progress: float  # [m] along the route
    reference_progress: float  # [m] PDM-Closed's progress (times its NC * DAC)
    collision_time_s: float | None = None
    collision_agent_id: str | None = None
    collision_type: str | None = None
    collided_agent_ids: list[str] = field(default_factory=list)  # every contact, at fault or not
    dac_violation_time_s: float | None = None
    ttc_time_s: float | None = None
    ttc_agent_id: str | None = None
    comfort_violations: list[str] = field(default_factory=list)
    comfort_values: dict[str, float] = field(default_factory=dict)
    tracked: TrackedTrajectory | None = field(default=None, repr=False)


def score_tracked(context: ScoringContext, tracked: TrackedTrajectory, reference_progress: float) -> PDMResult:
    """Score an already tracked ego trajectory (e.g. the simulator's own closed-loop states)."""
    m = evaluate_tracked(context, tracked)
    ep = ego_progress_score(m.progress, m.multiplier, reference_progress, PROGRESS_DISTANCE_THRESHOLD)
    return PDMResult(
        nc=m.nc.score,
        dac=m.dac,
        ttc=m.ttc.score,
        ep=ep,
        comfort=m.comfort.score,
        pdms=pdm_score(m.nc.score, m.dac, ep, m.ttc.score, m.comfort.score),
        progress=m.progress,
        reference_progress=float(reference_progress),
        collision_time_s=m.nc.time_s,
        collision_agent_id=m.nc.agent_id,
        collision_type=m.nc.collision_type,
        collided_agent_ids=list(m.nc.collided_ids),
        dac_violation_time_s=m.dac_time_s,
        ttc_time_s=m.ttc.time_s,
        ttc_agent_id=m.ttc.agent_id,
        comfort_violations=m.comfort.violations,
        comfort_values=m.comfort.values,
        tracked=tracked,
    )


def score_trajectory(
    scene: ScoringScene,
    trajectory_ego: np.ndarray,
    reference_progress: float | None = None,
    context: ScoringContext | None = None,
) -> PDMResult:
    """PDM score of a (NUM_POSES, 3) ego-frame plan made at the scene's t0.

    ``reference_progress`` (PDM-Closed's, see :func:`pdm_closed.reference_progress`) and ``context`` are computed
    when not given; pass them when scoring several plans on one scene.
    """
    context = context or prepare_scene(scene)
    if reference_progress is None:
        reference_progress = pdm_closed(scene, context).reference_progress
    reference = interpolate_trajectory(trajectory_ego, scene.ego.pose)
    tracked = context.tracker.simulate(scene.ego, reference)
    return score_tracked(context, tracked, reference_progress)


@dataclass
class PDMTable:
    """Per-scene results and the benchmark means (mean PDMS is the mean of per-scene PDMS, as NAVSIM reports)."""

    scene_ids: list[str]
    results: list[PDMResult]

    @property
    def means(self) -> dict[str, float]:
        if not self.results:
            return {name: float("nan") for name in SUB_SCORES}
        return {name: float(np.mean([getattr(r, name) for r in self.results])) for name in SUB_SCORES}

    def rows(self) -> list[dict[str, float | str]]:
        return [
            {"scene_id": sid, **{name: getattr(r, name) for name in SUB_SCORES}}
            for sid, r in zip(self.scene_ids, self.results)
        ]


def score_scenes(scenes: Sequence[ScoringScene], trajectories: Sequence[np.ndarray]) -> PDMTable:
    """Score one plan per scene (same order); returns the per-scene table and its means."""
    if len(scenes) != len(trajectories):
        raise ValueError(f"got {len(scenes)} scenes but {len(trajectories)} trajectories")
    results = [score_trajectory(scene, traj) for scene, traj in zip(scenes, trajectories)]
    return PDMTable([scene.scene_id for scene in scenes], results)


def format_pdm_table(table: PDMTable, max_rows: int | None = None) -> str:
    """Plain-text table: one row per scene (up to ``max_rows``), then the mean row."""
    header = f"{'scene':<24} " + " ".join(f"{name:>7}" for name in SUB_SCORES)
    lines = [header, "-" * len(header)]
    rows = table.rows() if max_rows is None else table.rows()[:max_rows]
    for row in rows:
        lines.append(f"{str(row['scene_id'])[:24]:<24} " + " ".join(f"{row[name]:7.3f}" for name in SUB_SCORES))
    if max_rows is not None and len(table.results) > max_rows:
        lines.append(f"... {len(table.results) - max_rows} more scenes")
    means = table.means
    lines.append("-" * len(header))
    lines.append(f"{'mean (' + str(len(table.results)) + ')':<24} " + " ".join(f"{means[n]:7.3f}" for n in SUB_SCORES))
    return "\n".join(lines)


def print_pdm_table(table: PDMTable, max_rows: int | None = 20, title: str = "PDM score") -> None:
    """Print the table with rich when it is installed, else as plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency, plain text is the fallback
        print(title)
        print(format_pdm_table(table, max_rows))
        return
    out = Table(title=title)
    out.add_column("scene")
    for name in SUB_SCORES:
        out.add_column(name.upper(), justify="right")
    rows = table.rows() if max_rows is None else table.rows()[:max_rows]
    for row in rows:
        out.add_row(str(row["scene_id"]), *(f"{row[name]:.3f}" for name in SUB_SCORES))
    if max_rows is not None and len(table.results) > max_rows:
        out.add_row(f"... {len(table.results) - max_rows} more", *([""] * len(SUB_SCORES)))
    means = table.means
    out.add_section()
    out.add_row(f"mean ({len(table.results)})", *(f"{means[name]:.3f}" for name in SUB_SCORES), style="bold")
    Console().print(out)
