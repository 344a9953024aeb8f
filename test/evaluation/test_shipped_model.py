"""The shipped model (models/tiny) drives frozen benchmark scenes in closed loop with sane PDM scores.

This is the main job's path (``diffusiondrive demo``): model directory -> ONNX Runtime CPU -> simulator sensors ->
plans every 0.5 s -> LQR tracking at 10 Hz -> per-step PDM score.
"""

from __future__ import annotations

import math

import pytest

from diffusiondrive_ros.evaluation.evaluate import RecordingPlanner, baseline_planners, run_evaluation
from diffusiondrive_ros.evaluation.scene_sets import resolve_scenes
from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.model_dir import load_model_dir, shipped_model_dir

pytestmark = [pytest.mark.sim, pytest.mark.slow]  # sim: the closed-loop test needs MetaDrive (test/conftest.py)


def test_shipped_model_directory_is_complete() -> None:
    folder = shipped_model_dir("tiny")
    for backend in ("torch", "onnxruntime"):
        cfg, model_file = load_model_dir(folder, backend)
        assert cfg.name == "tiny" and model_file.is_file()
    assert (folder / "README.md").is_file(), "the model card"


def test_shipped_model_drives_two_benchmark_scenes_with_sane_scores() -> None:
    cfg, _ = load_model_dir(shipped_model_dir("tiny"), "onnxruntime")
    planner = make_planner(cfg, "onnxruntime", str(shipped_model_dir("tiny")), seed=0, intra_op_threads=1)
    assert planner.providers == ["CPUExecutionProvider"]
    planners = {"diffusiondrive": RecordingPlanner(planner), **baseline_planners(["cv"])}
    report = run_evaluation(
        resolve_scenes("benchmark")[:2], planners, config=cfg, duration_s=8.0, camera_width=960,
        progress=False,
    )
    ours, cv = report.summary("diffusiondrive"), report.summary("cv")
    assert ours["failed"] == 0 and ours["scenes"] == 2
    for name in ("nc", "dac", "ttc", "comfort", "ep", "pdms"):
        assert math.isfinite(ours[name]) and 0.0 <= ours[name] <= 1.0, name
    print({"diffusiondrive": ours, "cv": cv})
    # Measured 0.85 PDMS (C 0.89, EP 0.77) against constant velocity's 0.56 (the stage-2 model: 0.61, C 0.61);
    # unsmoothed plans break the comfort limits almost everywhere (models/tiny/README.md). The margins leave room for
    # CPU-dependent float differences in a closed-loop drive.
    assert ours["comfort"] > 0.4, "smoothed plans stay within the comfort limits"
    assert ours["ep"] > 0.6
    assert ours["pdms"] > 0.5 and ours["pdms"] > cv["pdms"]


# The first scene of each suite family whose roads turn. On the suite's straight motorway and ramp scenes constant
# velocity is a strong baseline that the model does not beat everywhere (models/tiny/README.md has every family).
TURNING_FAMILIES = ("suite-wide", "suite-junctions", "suite-sumo-grid", "suite-sumo-random")


def test_shipped_model_beats_constant_velocity_on_turning_generalization_scenes() -> None:
    cfg, _ = load_model_dir(shipped_model_dir("tiny"), "onnxruntime")
    planner = make_planner(cfg, "onnxruntime", str(shipped_model_dir("tiny")), seed=0, intra_op_threads=1)
    scenes = [next(s for s in resolve_scenes("generalization") if s.family == family) for family in TURNING_FAMILIES]
    planners = {"diffusiondrive": RecordingPlanner(planner), **baseline_planners(["cv"])}
    report = run_evaluation(scenes, planners, config=cfg, camera_width=960, progress=False)
    ours, cv = report.summary("diffusiondrive"), report.summary("cv")
    print({"diffusiondrive": ours, "cv": cv})
    assert ours["failed"] == 0 and ours["scenes"] == len(TURNING_FAMILIES)
    # Measured 0.53 PDMS against constant velocity's 0.18 (the model before DAgger round 1: not measured here).
    assert ours["pdms"] > cv["pdms"] + 0.15
