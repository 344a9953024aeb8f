"""The closed-loop benchmark's fixed scenes: procedural benchmark seeds recorded with IDM traffic and the IDM expert
ego, stored in ScenarioNet format and replayed by MetaDrive's ScenarioEnv (non-reactive traffic by default).

Recording once and replaying makes the benchmark independent of MetaDrive's procedural generator and traffic RNG:
every planner sees exactly the same scenes and, with non-reactive traffic, exactly the same other agents.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from .closed_loop import ReplayScene
from .expert import scene_traffic_density
from .metadrive_env import SIM_DT_S, benchmark_seeds, make_env, make_replay_env

DATASET_NAME = "diffusiondrive_benchmark"
DATASET_VERSION = "v1"
DEFAULT_SCENE_S = 20.0


def export_benchmark(out_dir: str | os.PathLike, n: int, *, duration_s: float = DEFAULT_SCENE_S, first_offset: int = 0,
                     blocks: str | int = 3) -> list[str]:
    """Record ``n`` benchmark scenes (seeds from ``BENCHMARK_SEED_START + first_offset``) into ``out_dir``.

    Each scene runs ``duration_s`` of IDM traffic with the IDM expert ego. Returns the scenario file names.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    from metadrive.scenario.scenario_description import ScenarioDescription as SD
    from metadrive.scenario.utils import save_dataset

    scenarios = []
    steps = int(round(duration_s / SIM_DT_S))
    for seed in benchmark_seeds(n, first_offset):
        env = make_env(seed, blocks=blocks, traffic_density=scene_traffic_density(seed), ego_control="expert")
        try:
            exported, _ = env.export_scenarios(lambda obs: [0.0, 0.0], scenario_index=seed,
                                               max_episode_length=steps, suppress_warning=True)
        finally:
            env.close()
        scenario = exported[seed]
        scenario[SD.ID] = f"bench-{seed}"
        scenario[SD.METADATA][SD.ID] = scenario[SD.ID]
        scenario[SD.METADATA]["seed"] = seed
        scenarios.append(scenario)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_dataset(scenarios, DATASET_NAME, DATASET_VERSION, str(out))
    return sorted(p.name for p in out.glob("sd_*.pkl"))


def load_benchmark(data_dir: str | os.PathLike) -> list[ReplayScene]:
    """The scenes of a benchmark folder, in replay order (ScenarioEnv's index = position in the summary)."""
    data_dir = Path(data_dir)
    summary_file = data_dir / "dataset_summary.pkl"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{data_dir} is not a ScenarioNet dataset (no dataset_summary.pkl)")
    with open(summary_file, "rb") as f:
        summary = pickle.load(f)
    n = len(summary)
    if n == 0:
        raise ValueError(f"{data_dir} holds no scenes")
    return [ReplayScene(str(data_dir), i, n) for i in range(n)]


def make_benchmark_env(data_dir: str | os.PathLike, *, reactive_traffic: bool = False, ego_control: str = "external"):
    """A ScenarioEnv over a benchmark folder; ``env.reset(seed=i)`` loads scene i."""
    scenes = load_benchmark(data_dir)
    return make_replay_env(data_dir, num_scenarios=len(scenes), reactive_traffic=reactive_traffic,
                           ego_control=ego_control)
