"""Real-style road networks: SUMO generates a network and its traffic; the result is a ScenarioNet scene.

``netgenerate`` (from the ``eclipse-sumo`` wheel) builds a grid with displaced junctions, a spider or a random
network from a :class:`~diffusiondrive_ros.sim.scenes.SumoNetSpec`; ``randomTrips.py`` adds traffic and ``sumo`` drives
it at 0.1 s steps. One vehicle that is on the road for the whole scene becomes the ego (its log is the expert
demonstration a replayed scene starts from; its path to its destination is the route); every other vehicle becomes a
logged track. The map features come from the network's lanes (junction connections included) and junction shapes.
The scene replays in MetaDrive's ScenarioEnv exactly like the recorded benchmark scenes.

Only generated networks are used: networks that ship as examples inside packages (SUMO's, MetaDrive's) are kept for
held-out evaluation and never read here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .scenes import SceneSpec, SumoNetSpec

STEP_S = 0.1
ROUTE_TAIL_S = 40.0  # simulate this long after the scene so the ego's path beyond it becomes its route
VEHICLE_HEIGHT_M = 1.5
MIN_EGO_SPEED_M_S = 2.0  # an ego candidate must drive at least this fast on average over the scene
LANE_MARKING_GAP_M = 0.05
SCENE_RADIUS_M = 100.0  # map features and vehicles farther than this from the ego's route are left out
LANE_CHANGE_S = 4.0  # SUMO changes lanes in one step unless told to take this long (a kink in the path)


class SumoUnavailable(ImportError):
    """eclipse-sumo / sumolib are not installed (``pip install eclipse-sumo sumolib``)."""


class SumoSceneError(RuntimeError):
    """SUMO produced no usable scene for this spec (no vehicle stays on the road for the whole scene)."""


def sumo_available() -> bool:
    return importlib.util.find_spec("sumo") is not None and importlib.util.find_spec("sumolib") is not None


def _sumo_home() -> Path:
    if not sumo_available():
        raise SumoUnavailable("SUMO scenes need eclipse-sumo and sumolib: pip install eclipse-sumo sumolib")
    import sumo

    return Path(sumo.SUMO_HOME)


def _binary(name: str) -> str:
    return str(_sumo_home() / "bin" / name)


def netgenerate_args(net: SumoNetSpec, seed: int) -> list[str]:
    """``netgenerate`` options for a network spec (seeded, so the network is a function of spec and seed)."""
    common = [
        "--seed", str(seed), "--default.lanenumber", str(net.lane_num), "--default.lanewidth", f"{net.lane_width}",
        "--default.speed", f"{net.speed}", "--default-junction-type", net.junction_type, "--no-turnarounds", "true",
        "--junctions.corner-detail", "8", "--no-internal-links", "false",
    ]
    if net.layout == "grid":
        layout = ["--grid", "--grid.number", str(net.size), "--grid.length", f"{net.spacing_m}",
                  "--grid.attach-length", f"{net.spacing_m}"]
    elif net.layout == "spider":
        layout = ["--spider", "--spider.arm-number", str(net.size), "--spider.circle-number", "3",
                  "--spider.space-radius", f"{net.spacing_m}", "--spider.omit-center"]
    else:
        layout = ["--rand", "--rand.iterations", str(net.size), "--rand.max-distance", f"{1.5 * net.spacing_m}",
                  "--rand.min-distance", f"{0.6 * net.spacing_m}", "--rand.min-angle", "50",
                  "--rand.connectivity", "0.9"]
    perturb = ["--perturb-x", f"{net.perturb_m}", "--perturb-y", f"{net.perturb_m}"] if net.perturb_m > 0 else []
    return layout + perturb + common


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "SUMO_HOME": str(
        _sumo_home())})
    if result.returncode != 0:
        raise SumoSceneError(f"{Path(cmd[0]).name} failed ({result.returncode}): {result.stderr.strip()[-800:]}")


def simulate(spec: SceneSpec, work_dir: str | os.PathLike, end_s: float) -> tuple[Path, Path]:
    """Generate the network and ``end_s`` seconds of traffic in ``work_dir``; returns (net file, FCD file)."""
    net = spec.sumo
    if net is None:
        raise ValueError(f"{spec.scene_id} is not a SUMO scene")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    net_file, routes, fcd = work / "net.net.xml", work / "routes.rou.xml", work / "fcd.xml"
    _run([_binary("netgenerate"), *netgenerate_args(net, spec.seed), "-o", str(net_file)], work)
    _run([sys.executable, str(_sumo_home() / "tools" / "randomTrips.py"), "-n", str(net_file),
          "-o", str(work / "trips.xml"), "-r", str(routes), "--seed", str(spec.seed), "-b", "0", "-e", f"{end_s}",
          "-p", f"{net.traffic_period_s}", "--fringe-factor", "5", "--min-distance", f"{2 * net.spacing_m}",
          "--remove-loops", "--validate", "--trip-attributes", 'departLane="best" departSpeed="max"'], work)
    _run([_binary("sumo"), "-n", str(net_file), "-r", str(routes), "--fcd-output", str(fcd), "--step-length",
          f"{STEP_S}", "--begin", "0", "--end", f"{end_s}", "--seed", str(spec.seed), "--no-step-log", "true",
          "--time-to-teleport", "-1", "--collision.action", "warn", "--no-warnings", "true",
          "--lanechange.duration", f"{LANE_CHANGE_S}"], work)
    return net_file, fcd


@dataclass
class _Track:
    length: float
    width: float
    steps: dict[int, tuple[float, float, float, float]]  # step -> x, y (centre), heading, speed


def read_fcd(fcd_file: str | os.PathLike, types: dict[str, tuple[float, float]]) -> dict[str, _Track]:
    """Vehicle tracks from SUMO's FCD output; positions moved from SUMO's front bumper to the box centre."""
    tracks: dict[str, _Track] = {}
    step = -1
    for event, elem in ElementTree.iterparse(str(fcd_file), events=("start", "end")):
        if event == "end":
            if elem.tag == "timestep":
                elem.clear()
            continue
        if elem.tag == "timestep":
            step = int(round(float(elem.get("time")) / STEP_S))
        elif elem.tag == "vehicle":
            length, width = types.get(elem.get("type", "DEFAULT_VEHTYPE"), (5.0, 1.8))
            # SUMO's angle: degrees clockwise from north; its position: the front bumper's centre.
            heading = float(np.arctan2(np.cos(np.deg2rad(float(elem.get("angle")))),
                                       np.sin(np.deg2rad(float(elem.get("angle"))))))
            x, y = float(elem.get("x")), float(elem.get("y"))
            track = tracks.setdefault(elem.get("id"), _Track(length, width, {}))
            track.steps[step] = (x - 0.5 * length * np.cos(heading), y - 0.5 * length * np.sin(heading), heading,
                                 float(elem.get("speed")))
    return tracks


def _vehicle_types(routes_file: Path) -> dict[str, tuple[float, float]]:
    """vType id -> (length, width) from a routes file (SUMO's passenger defaults where none is given)."""
    out = {"DEFAULT_VEHTYPE": (5.0, 1.8)}
    if routes_file.is_file():
        for elem in ElementTree.parse(routes_file).getroot().iter("vType"):
            out[elem.get("id")] = (float(elem.get("length", 5.0)), float(elem.get("width", 1.8)))
    return out


# -- map -----------------------------------------------------------------------------------------------------------
def map_features(net_file: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """ScenarioNet map features of a SUMO network: car lanes (junction connections as unstructured lanes), junction
    surfaces, and painted lines (broken white between lanes of one direction, solid white at the outer edges, solid
    yellow between opposing directions)."""
    import shapely
    import sumolib

    net = sumolib.net.readNet(str(net_file), withInternal=True)
    features: dict[str, dict[str, Any]] = {}
    for edge in net.getEdges(withInternal=True):
        internal = edge.getFunction() == "internal"
        if edge.getFunction() not in ("", "normal", "internal"):
            continue
        lanes = [lane for lane in edge.getLanes() if lane.allows("passenger")]
        for lane in lanes:
            shape = np.asarray(lane.getShape(), dtype=np.float64)[:, :2]
            if len(shape) < 2 or lane.getLength() < 0.1:
                continue
            outline = shapely.LineString(shape).buffer(lane.getWidth() / 2, cap_style="flat", join_style="round")
            if outline.is_empty or outline.geom_type != "Polygon":
                continue
            features[f"lane_{lane.getID()}"] = {
                "type": "LANE_SURFACE_UNSTRUCTURE" if internal else "LANE_SURFACE_STREET",
                "polyline": np.column_stack([shape, np.zeros(len(shape))]),
                "polygon": np.asarray(outline.exterior.coords)[:, :2],
                "speed_limit_kmh": float(lane.getSpeed()) * 3.6,
                "entry_lanes": [f"lane_{other.getID()}" for other in lane.getIncoming()],
                "exit_lanes": [f"lane_{c.getToLane().getID()}" for c in lane.getOutgoing()],
            }
        if not internal and lanes:
            features.update(_edge_lines(edge, lanes))
    for node in net.getNodes():
        shape = np.asarray(node.getShape(), dtype=np.float64)[:, :2] if node.getShape() else np.zeros((0, 2))
        if len(shape) < 3:
            continue
        polygon = shapely.Polygon(shape)
        polygon = polygon if polygon.is_valid else polygon.buffer(0)
        if polygon.is_empty or polygon.geom_type != "Polygon" or polygon.area < 1.0:
            continue
        # MetaDrive needs a centreline for every lane surface; a junction's is a short segment through its middle.
        c = np.asarray(polygon.centroid.coords)[0]
        features[f"junction_{node.getID()}"] = {
            "type": "LANE_SURFACE_UNSTRUCTURE",
            "polyline": np.array([[c[0] - 0.5, c[1], 0.0], [c[0] + 0.5, c[1], 0.0]]),
            "polygon": np.asarray(polygon.exterior.coords)[:, :2],
            "entry_lanes": [], "exit_lanes": [],
        }
    return features


def _edge_lines(edge, lanes) -> dict[str, dict[str, Any]]:
    """Painted lines of one road edge (lane 0 is SUMO's rightmost lane)."""
    import shapely

    out = {}
    ordered = sorted(lanes, key=lambda lane: lane.getIndex())
    opposite = any(e.getToNode() == edge.getFromNode() for e in edge.getToNode().getOutgoing())
    for i, lane in enumerate(ordered):
        centre = shapely.LineString(np.asarray(lane.getShape(), dtype=np.float64)[:, :2])
        half = lane.getWidth() / 2 - LANE_MARKING_GAP_M
        right = centre.offset_curve(-half)
        if i == 0 and not right.is_empty:
            out[f"line_{lane.getID()}_right"] = _line("ROAD_LINE_SOLID_SINGLE_WHITE", right)
        left = centre.offset_curve(half)
        if left.is_empty:
            continue
        if i < len(ordered) - 1:
            out[f"line_{lane.getID()}_left"] = _line("ROAD_LINE_BROKEN_SINGLE_WHITE", left)
        else:
            kind = "ROAD_LINE_SOLID_SINGLE_YELLOW" if opposite else "ROAD_LINE_SOLID_SINGLE_WHITE"
            out[f"line_{lane.getID()}_left"] = _line(kind, left)
    return out


def _line(kind: str, line) -> dict[str, Any]:
    coords = np.asarray(getattr(line, "coords", []), dtype=np.float64)
    if coords.ndim != 2 or len(coords) < 2:  # a MultiLineString from a self-touching offset: keep its longest part
        parts = sorted(getattr(line, "geoms", []), key=lambda g: g.length)
        coords = np.asarray(parts[-1].coords, dtype=np.float64) if parts else np.zeros((0, 2))
    return {"type": kind, "polyline": np.column_stack([coords[:, :2], np.zeros(len(coords))])}


# -- scenario ------------------------------------------------------------------------------------------------------
ROUTE_RETURN_M = 15.0  # a route is cut where it comes back this close to a part at least ROUTE_LOOP_M behind
ROUTE_LOOP_M = 60.0


def route_without_return(path: np.ndarray) -> np.ndarray:
    """``path`` (M,2) up to where it first comes back near an earlier part of itself.

    Projecting onto a route that passes the same place twice is ambiguous (progress, plans and the driving command
    would jump to the later pass), so a route ends before it returns.
    """
    if len(path) < 3:
        return path
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    for i in range(len(path)):
        earlier = arc < arc[i] - ROUTE_LOOP_M
        if earlier.any() and np.min(np.linalg.norm(path[earlier] - path[i], axis=1)) < ROUTE_RETURN_M:
            return path[:i]
    return path


def choose_ego(tracks: dict[str, _Track], first: int, last: int, seed: int) -> str:
    """A vehicle on the road at every step first..last that keeps moving; vehicles that turn are preferred."""
    candidates = []
    for vid, track in tracks.items():
        if first not in track.steps or last not in track.steps or any(
                s not in track.steps for s in range(first, last + 1)):
            continue
        speeds = np.array([track.steps[s][3] for s in range(first, last + 1)])
        if speeds.mean() < MIN_EGO_SPEED_M_S or speeds[0] < MIN_EGO_SPEED_M_S:
            continue
        headings = np.unwrap([track.steps[s][2] for s in range(first, last + 1)])
        turning = float(np.abs(np.diff(headings)).sum())
        candidates.append((vid, turning))
    if not candidates:
        raise SumoSceneError("no vehicle stays on the road and moving for the whole scene")
    rng = np.random.default_rng([seed, 5])
    ordered = sorted(candidates)
    weights = np.array([1.0 + t for _, t in ordered])
    return ordered[int(rng.choice(len(ordered), p=weights / weights.sum()))][0]


def _track_arrays(track: _Track, first: int, steps: int) -> dict[str, np.ndarray]:
    position = np.zeros((steps, 3))
    heading = np.zeros(steps)
    velocity = np.zeros((steps, 2))
    valid = np.zeros(steps, dtype=bool)
    for i in range(steps):
        state = track.steps.get(first + i)
        if state is None:
            continue
        x, y, h, v = state
        position[i] = (x, y, 0.0)
        heading[i] = h
        velocity[i] = (v * np.cos(h), v * np.sin(h))
        valid[i] = True
    n = np.full((steps, 1), 1.0)
    return {"position": position, "heading": heading, "velocity": velocity, "valid": valid,
            "length": n * track.length, "width": n * track.width, "height": n * VEHICLE_HEIGHT_M}


def _outline(feature: dict[str, Any]):
    import shapely

    points = np.asarray(feature.get("polygon", feature.get("polyline")), dtype=np.float64)[:, :2]
    return shapely.MultiPoint(points)


def build_scenario(spec: SceneSpec, *, duration_s: float, warmup_s: float, scenario_id: str,
                   work_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ScenarioNet scene of a SUMO spec: ``duration_s`` after a cropped ``warmup_s`` (the network fills up).

    Metadata ``route`` is the ego's path from the scene's start to where SUMO's vehicle left the network (or the
    simulation ended), as for the recorded procedural scenes.
    """
    import shapely
    from metadrive.scenario.scenario_description import ScenarioDescription as SD

    first = int(round(warmup_s / STEP_S))
    steps = int(round(duration_s / STEP_S)) + 1
    end_s = warmup_s + duration_s + ROUTE_TAIL_S
    with tempfile.TemporaryDirectory(prefix="sumo-scene-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        net_file, fcd = simulate(spec, work, end_s)
        tracks = read_fcd(fcd, _vehicle_types(work / "routes.rou.xml"))
        features = map_features(net_file)
    ego_id = choose_ego(tracks, first, first + steps - 1, spec.seed)
    ego = tracks[ego_id]
    route = route_without_return(np.array([ego.steps[s][:2] for s in sorted(ego.steps) if s >= first]))
    region = shapely.LineString(route).buffer(SCENE_RADIUS_M)  # what the ego can meet on its way
    features = {k: f for k, f in features.items() if region.intersects(_outline(f))}
    scenario_tracks = {}
    for vid, track in tracks.items():
        arrays = _track_arrays(track, first, steps)
        valid = arrays["valid"]
        if not valid.any() or not region.intersects(shapely.MultiPoint(arrays["position"][valid, :2])):
            continue
        name = "ego" if vid == ego_id else f"sumo-{vid}"
        scenario_tracks[name] = {
            SD.TYPE: "VEHICLE", SD.STATE: arrays,
            SD.METADATA: {"track_length": steps, "type": "VEHICLE", "object_id": name, "original_id": vid},
        }
    scenario = {
        SD.ID: scenario_id, SD.VERSION: "diffusiondrive-sumo", SD.LENGTH: steps,
        SD.TRACKS: scenario_tracks, SD.MAP_FEATURES: features, SD.DYNAMIC_MAP_STATES: {},
        SD.METADATA: {
            SD.ID: scenario_id, "scenario_id": scenario_id, "dataset": "diffusiondrive-sumo", "seed": spec.seed,
            "metadrive_processed": False,
            SD.COORDINATE: "sumo", SD.SDC_ID: "ego", SD.TIMESTEP: np.arange(steps, dtype=np.float32) * STEP_S,
            "route": route, "warmup_s": float(warmup_s), "scene_spec": spec.to_dict(),
        },
    }
    SD.update_summaries(SD(scenario))
    return scenario
