"""Closed-loop evaluation results: per-plan PDM scores, per-scene means and outcomes, the report and its table."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..pdm.score import SUB_SCORES, PDMResult
from ..runtime.types import PlanResult
from ..sim.closed_loop import DriveLog

# Closed-loop outcomes per scene: any contact, a contact the ego is to blame for (NAVSIM's NC rule at first contact),
# leaving the road, share of the route driven.
CLOSED_LOOP_COLUMNS = ("collision", "at_fault_collision", "off_road", "route_completion")


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
    at_fault_collision_time_s: float | None = None
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
        out["at_fault_collision"] = float(self.at_fault_collision_time_s is not None)
        out["off_road"] = float(self.off_road_time_s is not None)
        out["route_completion"] = float(self.route_completion)
        return out

    def to_dict(self) -> dict:
        return {
            "planner": self.planner, "scene_id": self.scene_id, "error": self.error, "wall_s": self.wall_s,
            "collision_time_s": self.collision_time_s, "at_fault_collision_time_s": self.at_fault_collision_time_s,
            "contacts": [dataclasses.asdict(c) for c in self.drive_log.contacts] if self.drive_log else [],
            "off_road_time_s": self.off_road_time_s,
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
    families: dict[str, str] = field(default_factory=dict)  # scene id -> family (scene sets that group scenes)

    def summary(self, planner: str, family: str | None = None) -> dict[str, float]:
        """Means over the scenes the planner completed (of one family, if given); ``scenes``/``failed`` count them."""
        results = [r for r in self.results[planner] if family is None or self.families.get(r.scene_id) == family]
        done = [r for r in results if r.ok]
        out = {name: float(np.mean([r.means[name] for r in done])) if done else float("nan")
               for name in (*SUB_SCORES, *CLOSED_LOOP_COLUMNS)}
        out["scenes"] = float(len(done))
        out["failed"] = float(len(results) - len(done))
        return out

    def family_names(self) -> list[str]:
        """The families of the evaluated scenes, in order of first appearance."""
        return list(dict.fromkeys(self.families[s] for s in self.scene_ids if s in self.families))

    def to_dict(self) -> dict:
        return {
            "settings": self.settings,
            "scene_ids": self.scene_ids,
            "summary": {p: self.summary(p) for p in self.planners},
            "families": self.families,
            "family_summary": {f: {p: self.summary(p, f) for p in self.planners} for f in self.family_names()},
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


def format_table(report: EvalReport, family: str | None = None) -> str:
    """One row per planner: PDM sub-scores (means over scenes of per-step means) and closed-loop outcomes.

    A report whose scenes come in families (the generalization suite) gets a table per family, then the overall one.
    """
    if family is None and report.family_names():
        parts = [f"== {name} ==\n" + format_table(report, name) for name in report.family_names()]
        return "\n\n".join([*parts, "== all scenes ==\n" + format_table(report, "")])
    w = max([14, *(len(p) for p in report.planners)])
    header = (f"{'planner':<{w}} {'scenes':>6} " + " ".join(f"{n.upper():>6}" for n in ("nc", "dac", "ttc")) +
              f" {'C':>6} {'EP':>6} {'PDMS':>6} | {'coll.':>6} {'at-f.':>6} {'offrd':>6} {'RC':>6}")
    lines = [header, "-" * len(header)]
    for planner in report.planners:
        s = report.summary(planner, family or None)
        scenes = f"{int(s['scenes'])}" + (f"-{int(s['failed'])}!" if s["failed"] else "")
        lines.append(f"{planner:<{w}} {scenes:>6} " + " ".join(
            f"{s[n]:6.3f}" for n in ("nc", "dac", "ttc", "comfort", "ep", "pdms")) +
            " | " + " ".join(f"{s[n]:6.2f}" for n in ("collision", "at_fault_collision", "off_road",
                                                     "route_completion")))
    if family:
        return "\n".join(lines)
    lines.append("per-step PDM sub-scores averaged per scene, then over scenes; coll./at-f./offrd: share of scenes "
                 "with a collision / a collision the ego is at fault for (NAVSIM's rule) / leaving the road; RC: "
                 "route completion")
    failed = [(p, r) for p in report.planners for r in report.results[p] if r.error]
    for planner, result in failed:
        lines.append(f"! {planner} failed on {result.scene_id}: {result.error.splitlines()[-1]}")
    return "\n".join(lines)
