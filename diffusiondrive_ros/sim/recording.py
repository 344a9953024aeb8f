"""Recording scene sets: procedural benchmark seeds driven by MetaDrive's IDM traffic and IDM ego, stored in
ScenarioNet format and replayed by MetaDrive's ScenarioEnv (non-reactive traffic by default); see
``evaluation.scene_sets`` for loading them.

Recording once and replaying makes the benchmark independent of MetaDrive's procedural generator and traffic RNG:
every planner sees exactly the same scenes and, with non-reactive traffic, exactly the same other agents.

The expert starts every procedural episode at rest, so each recording begins with a warm-up (``warmup_s``) that is
cropped away: at a scene's t0 the ego and the traffic are already at speed, as in a NAVSIM scene, and a
constant-velocity planner has something to keep. Reproduce the committed set with::

    diffusiondrive scenes record --out models/benchmark --n 8
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .map_adapter import route_lanes, route_polyline
from .metadrive_env import SIM_DT_S, benchmark_seeds, make_env
from .scenes import legacy_traffic_density

DATASET_NAME = "diffusiondrive_benchmark"
DATASET_VERSION = "v2"
DEFAULT_SCENE_S = 20.0
DEFAULT_WARMUP_S = 5.0
DEFAULT_BLOCKS = 3
DEFAULT_NUM_SCENES = 8
ROUTE_JOIN_M = 15.0  # the continuation starts this far past the log's end: a gentle join if the lanes differ
ROUTE_KEY = "route"  # metadata entry: (M, 2) route centreline, the logged ego path continued to the destination


def _route_beyond_log(env, scenario: dict) -> np.ndarray:
    """The logged ego path, continued along the navigation route in the lane the ego ended in.

    Replayed logs have no lane route of their own, and the logged path alone ends where the expert stopped, so a
    faster planner would run out of route; the continuation comes from the recording env in its final state.
    """
    import shapely
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    track = scenario[SD.TRACKS][scenario[SD.METADATA][SD.SDC_ID]][SD.STATE]
    logged = np.asarray(track["position"], dtype=np.float64)[np.asarray(track["valid"], dtype=bool), :2]
    lanes = route_lanes(env)
    if not lanes or len(logged) < 2:
        return logged
    nav = shapely.LineString(route_polyline(lanes))
    s_end = nav.project(shapely.Point(*logged[-1]))
    ahead = np.asarray(nav.coords)[:, :2]
    arc = np.array([nav.project(shapely.Point(*p)) for p in ahead])
    continuation = ahead[arc > s_end + ROUTE_JOIN_M]
    return np.concatenate([logged, continuation]) if len(continuation) else logged


def crop_scenario(scenario: dict, start_step: int) -> dict:
    """The scenario from step ``start_step`` on, re-timed to start at 0 (in place; returns it).

    Every track's per-step arrays are sliced; tracks with no valid step left are dropped (never the ego's).
    """
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    length = int(scenario[SD.LENGTH])
    if not 0 <= start_step < length - 1:
        raise ValueError(f"start_step must be in [0, {length - 1}), got {start_step}")
    sdc = scenario[SD.METADATA][SD.SDC_ID]
    for track_id in list(scenario[SD.TRACKS]):
        track = scenario[SD.TRACKS][track_id]
        state = {k: np.asarray(v)[start_step:] for k, v in track[SD.STATE].items()}
        if track_id != sdc and not np.asarray(state["valid"]).any():
            del scenario[SD.TRACKS][track_id]
            continue
        track[SD.STATE] = state
        track[SD.METADATA]["track_length"] = length - start_step
    for light in scenario.get(SD.DYNAMIC_MAP_STATES, {}).values():
        light[SD.STATE] = {k: np.asarray(v)[start_step:] for k, v in light[SD.STATE].items()}
    ts = np.asarray(scenario[SD.METADATA]["ts"])[start_step:]
    scenario[SD.METADATA]["ts"] = ts - ts[0]
    scenario[SD.LENGTH] = length - start_step
    ids = set(scenario[SD.TRACKS])
    for key in ("object_to_agent", "agent_to_object"):
        mapping = scenario[SD.METADATA].get(key)
        if isinstance(mapping, dict):
            scenario[SD.METADATA][key] = {k: v for k, v in mapping.items() if k in ids or v in ids}
    SD.update_summaries(SD(scenario))  # SD's helpers need its attribute access; metadata is shared, so in place
    return scenario


def record_scene(seed: int, *, duration_s: float = DEFAULT_SCENE_S, warmup_s: float = DEFAULT_WARMUP_S,
                 blocks: str | int = DEFAULT_BLOCKS) -> dict:
    """One benchmark scene: ``warmup_s + duration_s`` of IDM traffic and IDM ego, the warm-up cropped away."""
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    if not duration_s > 0 or warmup_s < 0:
        raise ValueError(f"duration_s must be positive and warmup_s >= 0, got {duration_s}, {warmup_s}")
    warmup_steps = int(round(warmup_s / SIM_DT_S))
    steps = warmup_steps + int(round(duration_s / SIM_DT_S))
    env = make_env(seed, blocks=blocks, traffic_density=legacy_traffic_density(seed), ego_control="expert")
    try:
        exported, _ = env.export_scenarios(lambda obs: [0.0, 0.0], scenario_index=seed, max_episode_length=steps,
                                           suppress_warning=True)
        scenario = exported[seed]
        if warmup_steps:
            crop_scenario(scenario, warmup_steps)
        scenario[SD.METADATA][ROUTE_KEY] = _route_beyond_log(env, scenario)
    finally:
        env.close()
    scenario[SD.ID] = f"bench-{seed}"
    scenario[SD.METADATA][SD.ID] = scenario[SD.ID]
    scenario[SD.METADATA]["seed"] = seed
    scenario[SD.METADATA]["warmup_s"] = float(warmup_s)
    return scenario


def export_benchmark(out_dir: str | os.PathLike, n: int, *, duration_s: float = DEFAULT_SCENE_S,
                     warmup_s: float = DEFAULT_WARMUP_S, first_offset: int = 0,
                     blocks: str | int = DEFAULT_BLOCKS, overwrite: bool = False) -> list[str]:
    """Record ``n`` benchmark scenes (seeds from ``BENCHMARK_SEED_START + first_offset``) into ``out_dir``.

    Each scene is ``duration_s`` long after a cropped ``warmup_s``. ``overwrite`` first removes an existing
    ScenarioNet dataset in ``out_dir`` (its ``sd_*.pkl`` and summary files only). Returns the scenario file names.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    from metadrive.scenario.utils import save_dataset
    from tqdm import tqdm

    out = Path(out_dir)
    if out.exists() and any(out.glob("sd_*.pkl")):
        if not overwrite:
            raise FileExistsError(f"{out} already holds scenes; pass overwrite=True (--overwrite) to replace them")
        for old in [*out.glob("sd_*.pkl"), out / "dataset_summary.pkl", out / "dataset_mapping.pkl"]:
            old.unlink(missing_ok=True)
    seeds = benchmark_seeds(n, first_offset)
    scenarios = [record_scene(seed, duration_s=duration_s, warmup_s=warmup_s, blocks=blocks)
                 for seed in tqdm(seeds, desc="recording benchmark scenes", unit="scene")]
    out.mkdir(parents=True, exist_ok=True)
    save_dataset(scenarios, DATASET_NAME, DATASET_VERSION, str(out))
    return sorted(p.name for p in out.glob("sd_*.pkl"))
