"""Closed-loop evaluation: drive every scene with every planner, score each planning step with the PDM score.

Each planner drives each scene in closed loop (``closed_loop.drive``: plan every 0.5 s, LQR tracking at 10 Hz). Every
plan that has a full 4 s of log after it is scored NAVSIM-style on that step's ``ScoringScene`` (the ego state the
planner itself reached, the other agents' logged next 4 s). A scene's score is the mean over its steps; a planner's
score is the mean over scenes. The closed-loop outcome (collision, leaving the road, route completion) is reported
beside it, since per-step scores cannot see where a drive ends up.

A planner that fails on one scene is recorded with its error and the evaluation goes on.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contract import check_scored_duration
from ..model.config import ModelConfig
from ..runtime.types import PlanResult, SensorFrame
from .closed_loop import DriveLog, PlannerFn, ReplayScene, drive
from .pdm.score import SUB_SCORES, PDMResult, score_trajectory
from .planners import IDMRoutePlanner, constant_velocity_planner

log = logging.getLogger(__name__)

BASELINES = ("expert", "cv")
DEFAULT_DURATION_S = 20.0
CLOSED_LOOP_COLUMNS = ("collision", "off_road", "route_completion")
BENCHMARK_DIR_ENV = "DIFFUSIONDRIVE_BENCHMARK_DIR"


# -- planners ------------------------------------------------------------------------------------------------------
class RecordingPlanner:
    """A learned :class:`~diffusiondrive_ros.runtime.planner.Planner` as a drive planner function.

    Keeps every ``PlanResult`` of the current scene (for the candidate-mode plots); :meth:`start_scene` clears them.
    """

    needs_sensors = True

    def __init__(self, planner) -> None:
        self.planner = planner
        self.results: list[PlanResult] = []

    def start_scene(self) -> None:
        self.results = []

    def __call__(self, frame: SensorFrame) -> np.ndarray:
        result = self.planner.plan(frame)
        self.results.append(result)
        return np.asarray(result.trajectory, dtype=np.float64)


def baseline_planners(names: Sequence[str] = BASELINES) -> dict[str, PlannerFn]:
    """The reference planners by name: ``expert`` (IDM route follower, ground truth) and ``cv`` (constant velocity)."""
    out: dict[str, PlannerFn] = {}
    for name in names:
        if name == "expert":
            out[name] = IDMRoutePlanner()
        elif name == "cv":
            out[name] = constant_velocity_planner
        else:
            raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    return out


def resolve_scenes(scenes: str | os.PathLike) -> list[ReplayScene]:
    """``"benchmark"`` (the frozen set: ``$DIFFUSIONDRIVE_BENCHMARK_DIR``, the source tree's models/benchmark or the
    installed share/diffusiondrive_ros/models/benchmark) or a ScenarioNet folder written by ``sim.benchmark``."""
    from .benchmark import load_benchmark

    if str(scenes) == "benchmark":
        candidates = [os.environ.get(BENCHMARK_DIR_ENV, ""),
                      str(Path(__file__).resolve().parents[2] / "models" / "benchmark"),
                      str(Path(sys.prefix) / "share" / "diffusiondrive_ros" / "models" / "benchmark")]
        for folder in candidates:
            if folder and (Path(folder) / "dataset_summary.pkl").is_file():
                return load_benchmark(folder)
        raise FileNotFoundError(f"no frozen benchmark found (set {BENCHMARK_DIR_ENV} or pass a scene folder); "
                                f"looked in {[c for c in candidates if c]}")
    return load_benchmark(scenes)


# -- results -------------------------------------------------------------------------------------------------------
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


# -- running -------------------------------------------------------------------------------------------------------
def evaluate_drive(planner: str, drive_log: DriveLog) -> SceneResult:
    """Score every scorable plan of a drive on its own scoring scene."""
    result = SceneResult(planner, drive_log.scene_id, collision_time_s=drive_log.collision_time,
                         off_road_time_s=drive_log.off_road_time, route_completion=drive_log.route_completion,
                         progress_m=float(drive_log.progress_m), drive_log=drive_log)
    for t, plan, scene in zip(drive_log.plan_times, drive_log.plans, drive_log.scoring_scenes):
        result.steps.append(StepResult.from_pdm(t, score_trajectory(scene, plan)))
    return result


def run_evaluation(
    scenes: Sequence[ReplayScene | int],
    planners: Mapping[str, PlannerFn],
    *,
    config: ModelConfig,
    duration_s: float | None = None,
    reactive_traffic: bool = False,
    out_dir: str | os.PathLike | None = None,
    plots: bool = True,
    progress: bool = True,
    camera_width: int | None = None,
    on_scene: Callable[[SceneResult], None] | None = None,
) -> EvalReport:
    """Drive every scene with every planner and score it; writes ``results.json`` and BEV plots into ``out_dir``.

    scenes: replayed benchmark scenes (``resolve_scenes``) or procedural benchmark seeds. planners: name -> planner
    function (``baseline_planners``, :class:`RecordingPlanner`); functions with ``needs_sensors`` get rendered
    cameras and LiDAR, the others skip rendering. duration_s: per scene, capped at the scene's logged length
    (default: that length, or 20 s for a seed). camera_width: default the config's source width.
    """
    if not scenes:
        raise ValueError("no scenes to evaluate")
    if not planners:
        raise ValueError("no planners to evaluate")
    if duration_s is not None:
        check_scored_duration(duration_s)
    from tqdm import tqdm

    width = int(camera_width or config.camera.source_width)
    names = list(planners)
    scene_ids = [_scene_id(s) for s in scenes]
    report = EvalReport(names, scene_ids, {n: [] for n in names}, settings={
        "config": config.name, "duration_s": duration_s, "reactive_traffic": reactive_traffic, "camera_width": width,
    })
    out = Path(out_dir) if out_dir is not None else None
    bar = tqdm(total=len(scenes) * len(names), desc="closed-loop eval", unit="drive", disable=not progress)
    for scene, scene_id in zip(scenes, scene_ids):
        for name in names:
            bar.set_postfix_str(f"{scene_id} / {name}")
            result = _run_one(name, planners[name], scene, scene_id, config, _duration(scene, duration_s),
                              reactive_traffic, width)
            report.results[name].append(result)
            if on_scene is not None:
                on_scene(result)
            bar.update(1)
        if out is not None and plots:
            from .eval_plots import save_scene_plot

            try:
                save_scene_plot(out / "plots" / f"{scene_id}.png", scene_id,
                                {n: report.results[n][-1] for n in names})
            except Exception:  # a plot must never cost the results
                log.exception("could not plot %s", scene_id)
    bar.close()
    if out is not None:
        report.save_json(out / "results.json")
    return report


def _run_one(name, fn, scene, scene_id, config, duration_s, reactive_traffic, width) -> SceneResult:
    start = time.perf_counter()
    if isinstance(fn, RecordingPlanner):
        fn.start_scene()
    try:
        drive_log = drive(scene, fn, duration_s, config=config, reactive_traffic=reactive_traffic,
                          camera_width=width, with_sensors=bool(getattr(fn, "needs_sensors", False)))
        result = evaluate_drive(name, drive_log)
    except Exception as exc:  # one failing scene is reported, not fatal
        log.warning("planner %s failed on %s: %s", name, scene_id, exc)
        result = SceneResult(name, scene_id, error="".join(traceback.format_exception(exc)[-4:]).strip())
    if isinstance(fn, RecordingPlanner):
        result.plan_results = list(fn.results)
    result.wall_s = time.perf_counter() - start
    return result


def _scene_id(scene: ReplayScene | int) -> str:
    if isinstance(scene, ReplayScene):
        return scene.name or f"replay-{scene.index}"
    return f"seed-{int(scene)}"


def _duration(scene: ReplayScene | int, requested: float | None) -> float:
    """The requested duration capped at the scene's log (so non-reactive agents never run out of log)."""
    length = scene.length_s if isinstance(scene, ReplayScene) else None
    if requested is None:
        return length if length is not None else DEFAULT_DURATION_S
    return min(requested, length) if length is not None else requested
