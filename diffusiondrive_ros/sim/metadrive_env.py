"""The one place that creates MetaDrive environments: asset pull disabled, headless, quiet, seeds split.

MetaDrive 0.4.3 tries to download its 3D assets from GitHub on the first ``reset()``. Physics, the lane graph,
traffic, top-down rendering and the scenario tools need none of them, and this machine has no route to GitHub, so
:func:`disable_asset_pull` replaces the engine's ``try_pull_asset`` hook with a no-op before the first engine exists.
Every env in this package is made through :func:`make_env` / :func:`make_replay_env`, which call it.

MetaDrive's engine is a process-wide singleton: at most one env may be open at a time; ``close()`` it before making
another.

Seeds: procedural maps and traffic are a pure function of the seed. Training data uses :data:`TRAINING_SEEDS`, the
closed-loop benchmark uses seeds from :data:`BENCHMARK_SEED_START` on; the two ranges are disjoint so no benchmark
scene is ever seen in training.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

TRAINING_SEEDS = range(0, 100_000)
BENCHMARK_SEED_START = 1_000_000
SIM_DT_S = 0.1  # one env.step: MetaDrive's default decision_repeat 5 x physics step 0.02 s
DEFAULT_BLOCKS = 4  # procedural map: number of random blocks (or a block string such as "SCrX")
# MetaDrive's default "trigger" traffic waits in later blocks until the ego arrives, so the first seconds of an
# episode are empty (20% of samples had an agent within 32 m); "respawn" traffic drives from t = 0 on (100%).
DEFAULT_TRAFFIC_MODE = "respawn"
TRAFFIC_MODES = ("respawn", "trigger", "hybrid")
DEFAULT_TRAFFIC_SPEED = 30.0 / 3.6  # MetaDrive's IDM cruise speed (30 km/h) [m/s]
DEFAULT_BLOCKS_KEY = 3  # MetaDrive's default of its short "map" key: required when map_config carries the map

# MetaDrive 0.4.3 procedural blocks that work with this package's map reader, experts and scorer:
# block id -> (MetaDrive block class, what it is).
BLOCKS: dict[str, tuple[str, str]] = {
    "S": ("Straight", "straight"),
    "C": ("Curve", "curve"),
    "r": ("InRampOnStraight", "on-ramp"),
    "R": ("OutRampOnStraight", "off-ramp"),
    "O": ("Roundabout", "roundabout"),
    "X": ("StdInterSection", "intersection"),
    "T": ("StdTInterSection", "T-junction"),
    "y": ("Merge", "merge (lanes end)"),
    "Y": ("Split", "split (lanes start)"),
    "U": ("StdInterSectionWithUTurn", "intersection with U-turn lanes"),
}
# Blocks left out, and why (checked by driving the IDM expert through a map of each).
EXCLUDED_BLOCKS: dict[str, str] = {
    "B": "bidirection: its far lanes carry no polygon in MetaDrive's map features, so the drivable area ends early",
    "f": "in-fork: MetaDrive 0.4.3 raises 'Bug exists in this block'",
    "F": "out-fork: MetaDrive 0.4.3 raises 'Bug exists in this block'",
    "P": "parking lot: needs single-lane roads and is not a road to drive through",
    "$": "toll gate: its booths stop the route (the expert drives into them)",
}
EgoControl = Literal["expert", "external"]

_ASSET_PULL_DISABLED = False


class MetaDriveUnavailable(ImportError):
    """metadrive-simulator is not installed (``pip install metadrive-simulator==0.4.3``)."""


def split_of_seed(seed: int) -> str:
    """``"train"`` or ``"benchmark"``; raises ValueError for a seed in neither range."""
    if seed in TRAINING_SEEDS:
        return "train"
    if seed >= BENCHMARK_SEED_START:
        return "benchmark"
    raise ValueError(f"seed {seed} is in neither the training range {TRAINING_SEEDS} nor >= {BENCHMARK_SEED_START}")


def benchmark_seeds(n: int, offset: int = 0) -> list[int]:
    """The first ``n`` benchmark seeds (after ``offset``)."""
    if n < 0 or offset < 0:
        raise ValueError(f"n and offset must be >= 0, got n={n}, offset={offset}")
    return list(range(BENCHMARK_SEED_START + offset, BENCHMARK_SEED_START + offset + n))


def disable_asset_pull() -> None:
    """Headless, quiet MetaDrive that never tries to download its assets. Idempotent; call before any env exists."""
    global _ASSET_PULL_DISABLED
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if _ASSET_PULL_DISABLED:
        return
    try:
        from metadrive.engine.base_engine import BaseEngine
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MetaDriveUnavailable("metadrive-simulator is not installed: pip install metadrive-simulator==0.4.3") \
            from exc
    BaseEngine.try_pull_asset = staticmethod(_no_asset_pull)
    for name in ("metadrive", "MetaDrive"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _ASSET_PULL_DISABLED = True


def _no_asset_pull() -> None:
    """Replacement for ``BaseEngine.try_pull_asset``: assets are not needed without 3D rendering."""


def metadrive_available() -> bool:
    """Whether metadrive-simulator is installed (without importing it, which loads pygame's OpenMP runtime)."""
    import importlib.util

    return importlib.util.find_spec("metadrive") is not None


def _common_config(env_class, extra: dict[str, Any] | None) -> dict[str, Any]:
    """Headless, quiet settings; episode-ending flags only where ``env_class`` knows them (they differ per env)."""
    known = env_class.default_config()
    config: dict[str, Any] = dict(
        use_render=False,
        image_observation=False,
        log_level=logging.ERROR,
        show_logo=False,
        # The drive log decides about collisions and leaving the road; MetaDrive must not end the episode early.
        crash_vehicle_done=False,
        crash_object_done=False,
        out_of_road_done=False,
        out_of_route_done=False,
        crash_human_done=False,
    )
    config = {k: v for k, v in config.items() if k in known}
    config.update(extra or {})
    return config


def make_env(
    seed: int,
    *,
    blocks: str | int = DEFAULT_BLOCKS,
    traffic_density: float = 0.1,
    ego_control: EgoControl = "expert",
    horizon: int | None = None,
    traffic_mode: str = DEFAULT_TRAFFIC_MODE,
    extra_config: dict[str, Any] | None = None,
    _traffic_speed_set: bool = False,
):
    """A MetaDrive env on the procedural map of ``seed`` (reset it with ``env.reset(seed=seed)``).

    blocks: number of random blocks or a block string (e.g. ``"SCrX"``: straight, curve, ramp, intersection).
    ego_control: ``"expert"`` drives the ego with MetaDrive's IDM policy (lane following and lane changes);
    ``"external"`` leaves it to the caller, who places it kinematically with :func:`place_ego` after each step.
    traffic_mode: MetaDrive's traffic mode, see :data:`DEFAULT_TRAFFIC_MODE`.
    """
    if traffic_mode not in TRAFFIC_MODES:
        raise ValueError(f"traffic_mode must be one of {TRAFFIC_MODES}, got {traffic_mode!r}")
    if ego_control not in ("expert", "external"):
        raise ValueError(f"ego_control must be 'expert' or 'external', got {ego_control!r}")
    if not isinstance(blocks, (str, int)) or (isinstance(blocks, int) and blocks < 1):
        raise ValueError(f"blocks must be a block string or a positive block count, got {blocks!r}")
    if not 0.0 <= traffic_density <= 1.0:
        raise ValueError(f"traffic_density must be in [0, 1], got {traffic_density}")
    split_of_seed(seed)
    disable_asset_pull()
    from metadrive.envs.metadrive_env import MetaDriveEnv

    if not _traffic_speed_set:
        set_traffic_speed(DEFAULT_TRAFFIC_SPEED)
    config = _common_config(MetaDriveEnv, extra_config)
    config.update(start_seed=int(seed), num_scenarios=1, map=blocks, traffic_density=float(traffic_density),
                  traffic_mode=traffic_mode)
    if ego_control == "expert" and "agent_policy" not in config:
        from metadrive.policy.idm_policy import IDMPolicy

        config["agent_policy"] = IDMPolicy
    if horizon is not None:
        config["horizon"] = int(horizon)
    return MetaDriveEnv(config)


def make_scene_env(spec, *, ego_control: EgoControl = "expert", horizon: int | None = None,
                   extra_config: dict[str, Any] | None = None):
    """A MetaDrive env on the procedural map of a ``sim.scenes.SceneSpec`` (reset it with ``seed=spec.seed``).

    The spec's block string (or random block count), lane count and width build the map; its traffic density, mode,
    oncoming traffic and traffic speed set the IDM traffic. With ``ego_control="expert"`` the ego is MetaDrive's IDM
    policy cruising at ``spec.cruise_speed`` (recording scenes); ``"external"`` leaves it to the caller.
    """
    if spec.kind != "procedural":
        raise ValueError(f"make_scene_env builds procedural maps; {spec.scene_id} is a {spec.kind} scene")
    config = dict(extra_config or {})
    blocks: str | int = spec.blocks
    if spec.block_weights:
        config["block_dist_config"] = _block_distribution(spec.block_weights)
    if not isinstance(spec.blocks, int) or spec.lane_num != 3 or spec.lane_width != 3.5:
        # MetaDrive takes lane layout only through map_config, and then not together with the short "map" key.
        config["map_config"] = {
            "type": "block_sequence" if isinstance(spec.blocks, str) else "block_num",
            "config": spec.blocks, "lane_num": int(spec.lane_num), "lane_width": float(spec.lane_width),
            "exit_length": 50,
        }
        blocks = DEFAULT_BLOCKS_KEY
    config["need_inverse_traffic"] = bool(spec.inverse_traffic)
    set_traffic_speed(spec.traffic_speed)
    if ego_control == "expert":
        config["agent_policy"] = _ego_idm_policy(spec.cruise_speed)
    return make_env(spec.seed, blocks=blocks, traffic_density=spec.traffic_density, ego_control=ego_control,
                    horizon=horizon, traffic_mode=spec.traffic_mode, extra_config=config, _traffic_speed_set=True)


def _block_distribution(weights):
    """A MetaDrive block distribution class drawing the given block ids with the given weights."""
    from metadrive.component.algorithm.blocks_prob_dist import PGBlockDistConfig

    chosen = dict(weights)
    total = sum(chosen.values())
    table = {cls: chosen.get(block_id, 0.0) / total for block_id, (cls, _) in BLOCKS.items()}
    # Block strings look blocks up by id in this table too: keep every class MetaDrive knows, at weight 0.
    table.update({cls: 0.0 for cls in PGBlockDistConfig.BLOCK_TYPE_DISTRIBUTION_V2 if cls not in table})
    return type("SceneBlockDistribution", (PGBlockDistConfig,), {"BLOCK_TYPE_DISTRIBUTION_V2": table})


def set_traffic_speed(speed_m_s: float) -> None:
    """Cruise speed of MetaDrive's IDM traffic (a class attribute of its IDM policy: process-wide, set per env)."""
    from metadrive.policy.idm_policy import IDMPolicy

    IDMPolicy.NORMAL_SPEED = float(speed_m_s) * 3.6


def _ego_idm_policy(cruise_m_s: float):
    """MetaDrive's IDM policy with its own cruise speed, so the ego's speed does not follow the traffic's.

    MetaDrive's vehicles cut the engine above 80 km/h; the ego's limit is raised above its cruise speed.
    """
    from metadrive.policy.idm_policy import IDMPolicy

    cruise_kmh = float(cruise_m_s) * 3.6

    def __init__(self, control_object, random_seed):  # noqa: N807 - the policy's constructor
        IDMPolicy.__init__(self, control_object, random_seed)
        control_object.config["max_speed_km_h"] = max(control_object.config["max_speed_km_h"], 1.2 * cruise_kmh)

    return type("EgoIDMPolicy", (IDMPolicy,), {"NORMAL_SPEED": cruise_kmh, "__init__": __init__})


def make_replay_env(data_dir: str | os.PathLike, *, num_scenarios: int, reactive_traffic: bool = False,
                    ego_control: EgoControl = "external", extra_config: dict[str, Any] | None = None):
    """A ScenarioEnv replaying a ScenarioNet-format folder (see ``sim.recording``); reset with ``seed=index``.

    Traffic is non-reactive (logged) by default, IDM-reactive with ``reactive_traffic=True``. The ego replays its log
    with ``ego_control="expert"`` and is placed by the caller with ``"external"``.
    """
    if ego_control not in ("expert", "external"):
        raise ValueError(f"ego_control must be 'expert' or 'external', got {ego_control!r}")
    disable_asset_pull()
    set_traffic_speed(DEFAULT_TRAFFIC_SPEED)
    from metadrive.envs.scenario_env import ScenarioEnv
    from metadrive.policy.env_input_policy import EnvInputPolicy
    from metadrive.policy.replay_policy import ReplayEgoCarPolicy

    config = _common_config(ScenarioEnv, extra_config)
    config.update(
        data_directory=str(data_dir),
        num_scenarios=int(num_scenarios),
        reactive_traffic=bool(reactive_traffic),
        agent_policy=ReplayEgoCarPolicy if ego_control == "expert" else EnvInputPolicy,
        sequential_seed=False,
    )
    return ScenarioEnv(config)


def place_ego(env, x: float, y: float, heading: float, velocity_world: tuple[float, float] = (0.0, 0.0)) -> None:
    """Set the ego's pose and velocity kinematically (the tracker, not MetaDrive's dynamics, moves it)."""
    agent = env.agent
    agent.set_position((float(x), float(y)))
    agent.set_heading_theta(float(heading))
    vx, vy = (float(v) for v in velocity_world)
    speed = (vx * vx + vy * vy) ** 0.5
    if speed > 1e-6:
        agent.set_velocity((vx / speed, vy / speed), speed)
    else:
        agent.set_velocity((1.0, 0.0), 0.0)
