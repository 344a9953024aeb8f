"""Offline PDM scoring: scoring scenes dumped to files, a plans file, and the table of one scored against the other.

Scene files are ``pdm.scene_io`` ``.npz`` files (one per planning step, named after the scene id). A plans file is
an ``.npz`` with ``scene_ids`` (N,) unicode and ``trajectories`` (N, 8, 3) float ego-frame plans, each made at its
scene's t0; it is read with ``allow_pickle=False``. A planner that is not in this repository can score itself by
reading the scene files (or just their ids and ego states), planning, and writing such a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..contract import NUM_POSES, POSE_DIM
from ..model.config import ModelConfig
from ..pdm.scene import ScoringScene
from ..pdm.scene_io import load_scene, save_scene
from ..pdm.score import PDMTable, score_scenes
from ..sim.closed_loop import ReplayScene, drive

EXPERT_PLANS_FILE = "expert_plans.npz"


def scene_file_name(scene_id: str) -> str:
    """A file name for a scene id ('bench-1000000@2.5' -> 'bench-1000000_t2.5.npz')."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in scene_id.replace("@", "_t"))
    return f"{safe}.npz"


def save_plans(path: str | os.PathLike, scene_ids: Sequence[str], trajectories: np.ndarray) -> Path:
    """Write a plans file; ``trajectories`` (N, 8, 3) ego frame, one per scene id."""
    trajectories = np.asarray(trajectories, dtype=np.float64)
    if trajectories.shape != (len(scene_ids), NUM_POSES, POSE_DIM):
        raise ValueError(f"trajectories must be ({len(scene_ids)}, {NUM_POSES}, {POSE_DIM}), got {trajectories.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, scene_ids=np.array([str(s) for s in scene_ids]), trajectories=trajectories)
    return path


def load_plans(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """scene id -> (8, 3) plan; raises ValueError on a malformed file."""
    with np.load(Path(path), allow_pickle=False) as data:
        missing = {"scene_ids", "trajectories"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a plans file, missing {sorted(missing)}")
        ids, trajs = [str(s) for s in data["scene_ids"]], np.asarray(data["trajectories"], dtype=np.float64)
    if trajs.shape != (len(ids), NUM_POSES, POSE_DIM) or not np.isfinite(trajs).all():
        raise ValueError(f"{path}: trajectories must be finite ({len(ids)}, {NUM_POSES}, {POSE_DIM}), "
                         f"got {trajs.shape}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate scene ids")
    return dict(zip(ids, trajs))


def load_scene_dir(scene_dir: str | os.PathLike) -> dict[str, ScoringScene]:
    """scene id -> scene of every ``.npz`` scene file in a folder (plans files in it are skipped)."""
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise FileNotFoundError(f"scene folder not found: {scene_dir}")
    scenes = {}
    for path in sorted(scene_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files:
                continue
        scene = load_scene(path)
        scenes[scene.scene_id] = scene
    if not scenes:
        raise ValueError(f"{scene_dir} holds no scene files")
    return scenes


def score_plan_file(scene_dir: str | os.PathLike, plans_path: str | os.PathLike,
                    allow_missing: bool = False) -> PDMTable:
    """Score every plan of a plans file against its scene; every scene needs a plan unless ``allow_missing``."""
    scenes = load_scene_dir(scene_dir)
    plans = load_plans(plans_path)
    unknown = sorted(set(plans) - set(scenes))
    if unknown:
        raise ValueError(f"plans for unknown scenes: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    missing = sorted(set(scenes) - set(plans))
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} scenes have no plan (e.g. {missing[:3]}); pass allow_missing to skip them")
    ids = [sid for sid in scenes if sid in plans]
    return score_scenes([scenes[sid] for sid in ids], [plans[sid] for sid in ids])


def dump_scenes(scenes: Sequence[ReplayScene | int], out_dir: str | os.PathLike, *, config: ModelConfig,
                duration_s: float | None = None, progress: bool = True) -> list[Path]:
    """Drive each scene with the IDM expert and save every planning step's scoring scene into ``out_dir``.

    Also writes the expert's own plans as ``expert_plans.npz``: a template of the plans file and a reference score.
    """
    from tqdm import tqdm

    from .evaluate import baseline_planners, scene_duration

    expert = baseline_planners(["expert"])["expert"]
    out = Path(out_dir)
    written, ids, plans = [], [], []
    for scene in tqdm(scenes, desc="dumping scoring scenes", unit="scene", disable=not progress):
        log = drive(scene, expert, scene_duration(scene, duration_s), config=config, with_sensors=False)
        for plan, scoring in zip(log.plans, log.scoring_scenes):
            written.append(save_scene(scoring, out / scene_file_name(scoring.scene_id)))
            ids.append(scoring.scene_id)
            plans.append(plan)
    if ids:
        save_plans(out / EXPERT_PLANS_FILE, ids, np.array(plans))
    return written
