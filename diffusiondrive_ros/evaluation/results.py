"""Closed-loop evaluation results: per-plan PDM scores, per-scene means and outcomes, the report and its table."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..pdm.score import SUB_SCORES, PDMResult
from ..runtime.types import PlanResult
from ..sim.closed_loop import DriveLog

CLOSED_LOOP_COLUMNS = ("collision", "off_road", "route_completion")


@dataclass
class StepResult:
    """The PDM score of one plan at time ``t`` of a drive."""

    t: float
    scores: dict[str, float]  # nc, dac, ttc, ep, comfort, pdms
    collision_agent_id: str | None = None
    dac_violation_time_s: float | None = None
    comfort_violations: list[str] = field(default_factory=list)

    @classmethod
    def from_pdm(cls, t: float, result: PDMResult) -> StepResult:
        return cls(float(t), {name: float(getattr(result, name)) for name in SUB_SCORES}, result.collision_agent_id,
                   result.dac_violation_time_s, list(result.comfort_violations))


@dataclass
class SceneResult:
    """One planner on one scene: per-step scores, their means, the closed-loop outcome, or the error."""

    planner: str
    scene_id: str
    steps: list[StepResult] = field(default_factory=list)
    collision_time_s: float | None = None
    off_road_time_s: float | None = None
    route_completion: float = 0.0
    progress_m: float = 0.0
    wall_s: float = 0.0
    error: str | None = None
    drive_log: DriveLog | None = field(default=None, repr=False)
    plan_results: list[PlanResult] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.steps)

    @property
    def means(self) -> dict[str, float]:
        """Sub-scores averaged over the scored steps, plus the closed-loop columns."""
        out = {name: float(np.mean([s.scores[name] for s in self.steps])) if self.steps else float("nan")
               for name in SUB_SCORES}
        out["collision"] = float(self.collision_time_s is not None)
        out["off_road"] = float(self.off_road_time_s is not None)
        out["route_completion"] = float(self.route_completion)
        return out

    def to_dict(self) -> dict:
        return {
            "planner": self.planner, "scene_id": self.scene_id, "error": self.error, "wall_s": self.wall_s,
            "collision_time_s": self.collision_time_s, "off_road_time_s": self.off_road_time_s,
            "route_completion": self.route_completion, "progress_m": self.progress_m,
            "means": self.means if self.steps else None,
            "steps": [{"t": s.t, **s.scores, "collision_agent_id": s.collision_agent_id,
                       "dac_violation_time_s": s.dac_violation_time_s, "comfort_violations": s.comfort_violations}
                      for s in self.steps],
        }


@dataclass
class EvalReport:
    """Every planner's :class:`SceneResult` per scene, in scene order."""

    planners: list[str]
    scene_ids: list[str]
    results: dict[str, list[SceneResult]]
    settings: dict = field(default_factory=dict)

    def summary(self, planner: str) -> dict[str, float]:
        """Means over the scenes the planner completed; ``scenes`` / ``failed`` count them."""
        done = [r for r in self.results[planner] if r.ok]
        out = {name: float(np.mean([r.means[name] for r in done])) if done else float("nan")
               for name in (*SUB_SCORES, *CLOSED_LOOP_COLUMNS)}
        out["scenes"] = float(len(done))
        out["failed"] = float(len(self.results[planner]) - len(done))
        return out

    def to_dict(self) -> dict:
        return {
            "settings": self.settings,
            "scene_ids": self.scene_ids,
            "summary": {p: self.summary(p) for p in self.planners},
            "scenes": {p: [r.to_dict() for r in self.results[p]] for p in self.planners},
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=_json_default))
        return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_table(report: EvalReport) -> str:
    """One row per planner: PDM sub-scores (means over scenes of per-step means) and closed-loop outcomes."""
    header = (f"{'planner':<14} {'scenes':>6} " + " ".join(f"{n.upper():>6}" for n in ("nc", "dac", "ttc")) +
              f" {'C':>6} {'EP':>6} {'PDMS':>6} | {'coll.':>6} {'offrd':>6} {'RC':>6}")
    lines = [header, "-" * len(header)]
    for planner in report.planners:
        s = report.summary(planner)
        scenes = f"{int(s['scenes'])}" + (f"-{int(s['failed'])}!" if s["failed"] else "")
        lines.append(f"{planner[:14]:<14} {scenes:>6} " + " ".join(
            f"{s[n]:6.3f}" for n in ("nc", "dac", "ttc", "comfort", "ep", "pdms")) +
            f" | {s['collision']:6.2f} {s['off_road']:6.2f} {s['route_completion']:6.2f}")
    lines.append("per-step PDM sub-scores averaged per scene, then over scenes; coll./offrd: share of scenes with a "
                 "collision / leaving the road; RC: route completion")
    failed = [(p, r) for p in report.planners for r in report.results[p] if r.error]
    for planner, result in failed:
        lines.append(f"! {planner} failed on {result.scene_id}: {result.error.splitlines()[-1]}")
    return "\n".join(lines)
