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

import contextlib
import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .closed_loop import SUMO_WARMUP_S
from .map_adapter import route_lanes, route_polyline
from .metadrive_env import SIM_DT_S, benchmark_seeds, make_env, make_scene_env
from .scenes import SceneSpec, legacy_traffic_density, suite_specs

DATASET_NAME = "diffusiondrive_benchmark"
DATASET_VERSION = "v2"
DEFAULT_SCENE_S = 20.0
DEFAULT_WARMUP_S = 5.0
DEFAULT_BLOCKS = 3
DEFAULT_NUM_SCENES = 8
ROUTE_JOIN_M = 15.0  # the continuation starts this far past the log's end: a gentle join if the lanes differ
ROUTE_KEY = "route"  # metadata entry: (M, 2) route centreline, the logged ego path continued to the destination
FAMILY_KEY = "family"  # metadata entry of scene-set scenes: the family (scene distribution) it was drawn from
SPEC_KEY = "scene_spec"  # metadata entry: the SceneSpec the scene was recorded from
EGO_WARMUP_ACCEL = 2.0  # [m/s^2] a procedural ego starts at rest: warm up long enough to reach its cruise speed
SUITE_DATASET_NAME = "diffusiondrive_generalization"
SUITE_DATASET_VERSION = "v1"
SUITE_PER_FAMILY = 4


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
    env = make_env(seed, blocks=blocks, traffic_density=legacy_traffic_density(seed), ego_control="expert")
    scenario = _record(env, seed, duration_s, warmup_s)
    return _name(scenario, f"bench-{seed}", seed, warmup_s)


def record_spec_scene(spec: SceneSpec, *, duration_s: float = DEFAULT_SCENE_S, warmup_s: float | None = None,
                      scenario_id: str | None = None) -> dict:
    """One scene of a :class:`~.scenes.SceneSpec`: a procedural map driven by MetaDrive's IDM ego at the spec's cruise
    speed (warm-up long enough to reach it, then cropped), or a generated SUMO network and its traffic."""
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    scenario_id = scenario_id or f"{spec.family}-{spec.seed}"
    if spec.kind == "sumo":
        from .sumo_scenes import build_scenario

        warmup = SUMO_WARMUP_S if warmup_s is None else warmup_s
        scenario = build_scenario(spec, duration_s=duration_s, warmup_s=warmup, scenario_id=scenario_id)
    else:
        warmup = DEFAULT_WARMUP_S + spec.cruise_speed / EGO_WARMUP_ACCEL if warmup_s is None else warmup_s
        scenario = _record(make_scene_env(spec, ego_control="expert"), spec.seed, duration_s, warmup)
    scenario = _name(scenario, scenario_id, spec.seed, warmup)
    scenario[SD.METADATA][FAMILY_KEY] = spec.family
    scenario[SD.METADATA][SPEC_KEY] = spec.to_dict()
    return scenario


def _record(env, seed: int, duration_s: float, warmup_s: float) -> dict:
    """Export ``warmup_s + duration_s`` of ``env`` (reset to ``seed``) as a scenario, warm-up cropped; closes env."""
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    if not duration_s > 0 or warmup_s < 0:
        env.close()
        raise ValueError(f"duration_s must be positive and warmup_s >= 0, got {duration_s}, {warmup_s}")
    warmup_steps = int(round(warmup_s / SIM_DT_S))
    steps = warmup_steps + int(round(duration_s / SIM_DT_S))
    try:
        exported, _ = env.export_scenarios(lambda obs: [0.0, 0.0], scenario_index=seed, max_episode_length=steps,
                                           suppress_warning=True)
        scenario = exported[seed]
        if warmup_steps:
            crop_scenario(scenario, warmup_steps)
        scenario[SD.METADATA][ROUTE_KEY] = _route_beyond_log(env, scenario)
    finally:
        env.close()
    return scenario


def _name(scenario: dict, scenario_id: str, seed: int, warmup_s: float) -> dict:
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    scenario[SD.ID] = scenario_id
    scenario[SD.METADATA][SD.ID] = scenario_id
    scenario[SD.METADATA]["seed"] = seed
    scenario[SD.METADATA]["warmup_s"] = float(warmup_s)
    return scenario


REPLAY_STATE_KEYS = ("position", "heading", "velocity", "valid", "length", "width", "height")


def compact_scenario(scenario: dict) -> dict:
    """The scenario with what replay needs only, in float32 (in place; returns it): tracks keep their replayed
    state (a recorded ego's throttle, steering and action go), map polylines and polygons lose float64 precision
    they do not need (float32 resolves 0.1 mm at 1 km)."""
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    for track in scenario[SD.TRACKS].values():
        state = track[SD.STATE]
        for key in [k for k in state if k not in REPLAY_STATE_KEYS]:
            del state[key]
        for key, value in state.items():
            array = np.asarray(value)
            state[key] = array.astype(np.float32) if array.dtype == np.float64 else array
    for feature in scenario[SD.MAP_FEATURES].values():
        for key in ("polyline", "polygon"):
            if key in feature:
                feature[key] = np.asarray(feature[key], dtype=np.float32)
    return scenario


def export_scene_set(out_dir: str | os.PathLike, scenarios: Iterable[dict], *, name: str = DATASET_NAME,
                     version: str = DATASET_VERSION, overwrite: bool = False) -> list[str]:
    """Write recorded scenarios as a ScenarioNet folder; returns the scenario file names.

    ``overwrite`` first removes an existing ScenarioNet dataset in ``out_dir`` (its ``sd_*.pkl`` and summary files
    only); without it an occupied folder is refused before anything is recorded (``scenarios`` may be lazy).
    """
    from metadrive.scenario.utils import save_dataset

    out = Path(out_dir)
    if out.exists() and any(out.glob("sd_*.pkl")):
        if not overwrite:
            raise FileExistsError(f"{out} already holds scenes; pass overwrite=True (--overwrite) to replace them")
        for old in [*out.glob("sd_*.pkl"), out / "dataset_summary.pkl", out / "dataset_mapping.pkl"]:
            old.unlink(missing_ok=True)
    recorded = [compact_scenario(s) for s in scenarios]
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # save_dataset prints a banner
        save_dataset(recorded, name, version, str(out))
    return sorted(p.name for p in out.glob("sd_*.pkl"))


def export_benchmark(out_dir: str | os.PathLike, n: int, *, duration_s: float = DEFAULT_SCENE_S,
                     warmup_s: float = DEFAULT_WARMUP_S, first_offset: int = 0,
                     blocks: str | int = DEFAULT_BLOCKS, overwrite: bool = False) -> list[str]:
    """Record ``n`` benchmark scenes (seeds from ``BENCHMARK_SEED_START + first_offset``) into ``out_dir``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    from tqdm import tqdm

    if Path(out_dir).exists() and any(Path(out_dir).glob("sd_*.pkl")) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds scenes; pass overwrite=True (--overwrite) to replace them")
    seeds = benchmark_seeds(n, first_offset)
    scenarios = (record_scene(seed, duration_s=duration_s, warmup_s=warmup_s, blocks=blocks)
                 for seed in tqdm(seeds, desc="recording benchmark scenes", unit="scene"))
    return export_scene_set(out_dir, scenarios, overwrite=overwrite)


def export_suite(out_dir: str | os.PathLike, per_family: int = SUITE_PER_FAMILY, *,
                 duration_s: float = DEFAULT_SCENE_S, overwrite: bool = False) -> list[str]:
    """Record the generalization suite: ``per_family`` scenes of every family of ``scenes.SUITE_FAMILIES``."""
    from tqdm import tqdm

    if Path(out_dir).exists() and any(Path(out_dir).glob("sd_*.pkl")) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds scenes; pass overwrite=True (--overwrite) to replace them")
    specs = suite_specs(per_family)
    scenarios = (record_spec_scene(spec, duration_s=duration_s)
                 for spec in tqdm(specs, desc="recording the generalization suite", unit="scene"))
    return export_scene_set(out_dir, scenarios, name=SUITE_DATASET_NAME, version=SUITE_DATASET_VERSION,
                            overwrite=overwrite)
