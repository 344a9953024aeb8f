"""Save / load a :class:`ScoringScene` so plans can be scored offline, without the simulator.

File format (one ``.npz``, written with ``numpy.savez_compressed``, read with ``allow_pickle=False``):

- ``meta``: a 0-d unicode array holding JSON::

    {"format": "diffusiondrive-pdm-scene", "version": 1, "scene_id": str,
     "ego": {x, y, heading, vx, vy, ax, ay, steering, yaw_rate}, "ego_length", "ego_width", "wheel_base",
     "route_wkb": hex, "drivable_area_wkb": hex,
     "lanes": [{"lane_id", "polygon_wkb": hex, "centerline_wkb": hex, "speed_limit": float | null}],
     "agents": [{"agent_id", "kind", "length", "width", "num_steps"}]}

  Geometry is hex WKB, so coordinates round-trip bit-exactly.
- ``agent_poses`` (A, T, 3), ``agent_velocities`` (A, T, 2), ``agent_valid`` (A, T): agents padded to the longest
  track T (padding is invalid); each agent's own length is its ``num_steps``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import shapely

from .scene import AgentTrack, EgoState, Lane, MapGeometry, ScoringScene

FORMAT_NAME = "diffusiondrive-pdm-scene"
FORMAT_VERSION = 1


class SceneFormatError(ValueError):
    """The file is not a scene this version can read."""


def _wkb(geom: shapely.Geometry) -> str:
    return shapely.to_wkb(geom, hex=True)


def _geom(text: str) -> shapely.Geometry:
    return shapely.from_wkb(text)


def save_scene(scene: ScoringScene, path: str | Path) -> Path:
    """Write ``scene`` to ``path`` (``.npz`` is appended by numpy when missing); returns the written path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    max_steps = max((a.num_steps for a in scene.agents), default=0)
    n = len(scene.agents)
    poses = np.zeros((n, max_steps, 3))
    velocities = np.zeros((n, max_steps, 2))
    valid = np.zeros((n, max_steps), dtype=bool)
    for i, agent in enumerate(scene.agents):
        poses[i, : agent.num_steps] = agent.poses
        velocities[i, : agent.num_steps] = agent.velocities
        valid[i, : agent.num_steps] = agent.valid
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "scene_id": scene.scene_id,
        "ego": {k: float(v) for k, v in asdict(scene.ego).items()},
        "ego_length": float(scene.ego_length),
        "ego_width": float(scene.ego_width),
        "wheel_base": float(scene.wheel_base),
        "route_wkb": _wkb(scene.route),
        "drivable_area_wkb": _wkb(scene.map.drivable_area),
        "lanes": [
            {
                "lane_id": lane.lane_id,
                "polygon_wkb": _wkb(lane.polygon),
                "centerline_wkb": _wkb(lane.centerline),
                "speed_limit": lane.speed_limit,
            }
            for lane in scene.map.lanes
        ],
        "agents": [
            {"agent_id": a.agent_id, "kind": a.kind, "length": a.length, "width": a.width, "num_steps": a.num_steps}
            for a in scene.agents
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, meta=np.array(json.dumps(meta)), agent_poses=poses, agent_velocities=velocities, agent_valid=valid
    )
    return path


def load_scene(path: str | Path) -> ScoringScene:
    """Read a scene written by :func:`save_scene`; raises :class:`SceneFormatError` on a foreign or newer file."""
    with np.load(Path(path), allow_pickle=False) as data:
        if "meta" not in data:
            raise SceneFormatError(f"{path}: no 'meta' entry; not a PDM scene file")
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT_NAME:
            raise SceneFormatError(f"{path}: format {meta.get('format')!r}, expected {FORMAT_NAME!r}")
        if int(meta.get("version", -1)) > FORMAT_VERSION:
            raise SceneFormatError(f"{path}: version {meta.get('version')} is newer than supported {FORMAT_VERSION}")
        poses, velocities, valid = data["agent_poses"], data["agent_velocities"], data["agent_valid"]
    lanes = [
        Lane(d["lane_id"], _geom(d["polygon_wkb"]), _geom(d["centerline_wkb"]), d["speed_limit"]) for d in meta["lanes"]
    ]
    agents = [
        AgentTrack(
            a["agent_id"],
            a["kind"],
            a["length"],
            a["width"],
            poses[i, : a["num_steps"]].copy(),
            velocities[i, : a["num_steps"]].copy(),
            valid[i, : a["num_steps"]].copy(),
        )
        for i, a in enumerate(meta["agents"])
    ]
    return ScoringScene(
        scene_id=meta["scene_id"],
        map=MapGeometry(lanes, _geom(meta["drivable_area_wkb"])),
        route=_geom(meta["route_wkb"]),
        ego=EgoState(**meta["ego"]),
        agents=agents,
        ego_length=meta["ego_length"],
        ego_width=meta["ego_width"],
        wheel_base=meta["wheel_base"],
    )
