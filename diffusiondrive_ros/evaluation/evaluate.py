"""Closed-loop evaluation: drive every scene with every planner, score each planning step with the PDM score.

Each planner drives each scene in closed loop (``closed_loop.drive``: plan every 0.5 s, LQR tracking at 10 Hz). Every
plan that has a full 4 s of log after it is scored NAVSIM-style on that step's ``ScoringScene`` (the ego state the
planner itself reached, the other agents' logged next 4 s). A scene's score is the mean over its steps; a planner's
score is the mean over scenes. The closed-loop outcome (collision, leaving the road, route completion) is reported
beside it, since per-step scores cannot see where a drive ends up.

A planner that fails on one scene is recorded with its error and the evaluation goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..contract import check_scored_duration
from ..model.config import ModelConfig
from ..pdm.score import score_trajectory
from ..runtime.types import PlanResult, SensorFrame
from ..sim.closed_loop import DriveLog, PlannerFn, ReplayScene, drive
from ..sim.planners import IDMRoutePlanner, constant_velocity_planner
from .results import EvalReport, SceneResult, StepResult

log = logging.getLogger(__name__)

BASELINES = ("expert", "cv")
DEFAULT_DURATION_S = 20.0
# on_scene(scene_id, {planner: result}): called once per scene, after every planner drove it (plots, progress files).
SceneHook = Callable[[str, Mapping[str, SceneResult]], None]


# -- planners ------------------------------------------------------------------------------------------------------
BLANKABLE_INPUTS = ("camera", "lidar")


def blank_inputs(frame: SensorFrame, blank: Sequence[str]) -> SensorFrame:
    """The frame with the named sensors blanked: cameras black, LiDAR without points (input ablations)."""
    unknown = sorted(set(blank) - set(BLANKABLE_INPUTS))
    if unknown:
        raise ValueError(f"cannot blank {unknown}; blankable inputs: {BLANKABLE_INPUTS}")
    changes: dict = {}
    if "camera" in blank:
        changes["cameras"] = tuple(np.zeros_like(np.asarray(image)) for image in frame.cameras)
    if "lidar" in blank:
        changes["lidar_points"] = np.zeros((0, np.asarray(frame.lidar_points).shape[1]), np.float32)
    return dataclasses.replace(frame, **changes)


class RecordingPlanner:
    """A learned :class:`~diffusiondrive_ros.runtime.planner.Planner` as a drive planner function.

    Keeps every ``PlanResult`` of the current scene (for the candidate-mode plots); :meth:`start_scene` clears them.
    ``blank``: sensors to blank before planning (see :func:`blank_inputs`), for input ablations.
    """

    needs_sensors = True

    def __init__(self, planner, blank: Sequence[str] = ()) -> None:
        self.planner = planner
        self.blank = tuple(blank)
        if set(self.blank) - set(BLANKABLE_INPUTS):
            raise ValueError(f"cannot blank {sorted(set(self.blank) - set(BLANKABLE_INPUTS))}")
        self.results: list[PlanResult] = []

    def start_scene(self) -> None:
        self.results = []

    def __call__(self, frame: SensorFrame) -> np.ndarray:
        result = self.planner.plan(blank_inputs(frame, self.blank) if self.blank else frame)
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


# -- running -------------------------------------------------------------------------------------------------------
def evaluate_drive(planner: str, drive_log: DriveLog) -> SceneResult:
    """Score every scorable plan of a drive on its own scoring scene."""
    result = SceneResult(planner, drive_log.scene_id, collision_time_s=drive_log.collision_time,
                         at_fault_collision_time_s=drive_log.at_fault_collision_time,
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
    progress: bool = True,
    camera_width: int | None = None,
    on_scene: SceneHook | None = None,
) -> EvalReport:
    """Drive every scene with every planner and score it; writes ``results.json`` into ``out_dir``.

    scenes: replayed scenes (``evaluation.scene_sets``) or procedural benchmark seeds. planners: name -> planner
    function (``baseline_planners``, :class:`RecordingPlanner`); functions with ``needs_sensors`` get rendered
    cameras and LiDAR, the others skip rendering. duration_s: per scene, capped at the scene's logged length
    (default: that length, or 20 s for a seed). camera_width: default the config's source width. on_scene: see
    :data:`SceneHook` (``evaluation.plots.scene_plotter`` draws each scene); an exception in it is logged, never
    fatal.
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
    families = {sid: s.family for sid, s in zip(scene_ids, scenes) if isinstance(s, ReplayScene) and s.family}
    report = EvalReport(names, scene_ids, {n: [] for n in names}, settings={
        "config": config.name, "duration_s": duration_s, "reactive_traffic": reactive_traffic, "camera_width": width,
    }, families=families)
    bar = tqdm(total=len(scenes) * len(names), desc="closed-loop eval", unit="drive", disable=not progress)
    for scene, scene_id in zip(scenes, scene_ids):
        for name in names:
            bar.set_postfix_str(f"{scene_id} / {name}")
            result = _run_one(name, planners[name], scene, scene_id, config, scene_duration(scene, duration_s),
                              reactive_traffic, width)
            report.results[name].append(result)
            bar.update(1)
        if on_scene is not None:
            try:
                on_scene(scene_id, {n: report.results[n][-1] for n in names})
            except Exception:  # a hook (a plot) must never cost the results
                log.exception("scene hook failed on %s", scene_id)
    bar.close()
    if out_dir is not None:
        report.save_json(Path(out_dir) / "results.json")
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


def scene_duration(scene: ReplayScene | int, requested: float | None) -> float:
    """The requested duration capped at the scene's log (so non-reactive agents never run out of log)."""
    length = scene.length_s if isinstance(scene, ReplayScene) else None
    if requested is None:
        return length if length is not None else DEFAULT_DURATION_S
    return min(requested, length) if length is not None else requested
