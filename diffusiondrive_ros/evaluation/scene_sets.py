"""Frozen scene sets: the closed-loop benchmark (and other recorded ScenarioNet folders) as replayable scenes.

A scene set is a ScenarioNet folder (``dataset_summary.pkl`` + ``sd_*.pkl``), recorded by ``sim.recording`` and
replayed by MetaDrive's ScenarioEnv. Named sets ship in ``models/`` (source tree or installed share folder).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ..resources import find_resource
from ..sim.closed_loop import ReplayScene
from ..sim.recording import FAMILY_KEY

# name -> (folder under models/, environment variable that overrides it)
NAMED_SETS: dict[str, tuple[str, str]] = {
    "benchmark": ("benchmark", "DIFFUSIONDRIVE_BENCHMARK_DIR"),  # 8 legacy-distribution scenes
    "generalization": ("generalization", "DIFFUSIONDRIVE_GENERALIZATION_DIR"),  # the shifted families (sim/scenes.py)
}


def load_scene_set(data_dir: str | os.PathLike) -> list[ReplayScene]:
    """The scenes of a ScenarioNet folder, in replay order (ScenarioEnv's index = position in the summary)."""
    data_dir = Path(data_dir)
    summary_file = data_dir / "dataset_summary.pkl"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{data_dir} is not a ScenarioNet dataset (no dataset_summary.pkl)")
    with open(summary_file, "rb") as f:
        summary = pickle.load(f)
    n = len(summary)
    if n == 0:
        raise ValueError(f"{data_dir} holds no scenes")
    scenes = []
    for i, meta in enumerate(summary.values()):
        ts = np.asarray(meta.get("ts", []))
        length_s = float(ts[-1] - ts[0]) if len(ts) > 1 else None
        scenes.append(ReplayScene(str(data_dir), i, n, name=str(meta.get("id", "")), length_s=length_s,
                                  family=str(meta.get(FAMILY_KEY, ""))))
    return scenes


def named_set_dir(name: str) -> Path:
    """The folder of a named scene set: its environment variable, else models/<folder> of the source tree or share."""
    folder, variable = NAMED_SETS[name]
    override = os.environ.get(variable)
    if override:
        if not (Path(override) / "dataset_summary.pkl").is_file():
            raise FileNotFoundError(f"${variable}={override} is not a ScenarioNet folder")
        return Path(override)
    return find_resource("models", folder, must_contain="dataset_summary.pkl")


def resolve_scenes(scenes: str | os.PathLike) -> list[ReplayScene]:
    """A named set (:data:`NAMED_SETS`, e.g. ``"benchmark"``) or any ScenarioNet folder."""
    if str(scenes) in NAMED_SETS:
        return load_scene_set(named_set_dir(str(scenes)))
    return load_scene_set(scenes)
