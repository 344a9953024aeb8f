"""Closed-loop driving: plan every 0.5 s from simulated sensors, track the plan at 10 Hz, place the ego in MetaDrive.

The ego is moved kinematically by the PDM tracker (LQR on a kinematic bicycle), not by MetaDrive's dynamics, so a
closed-loop drive and the PDM score use the same vehicle model. Every planning step also yields a ``ScoringScene``
(map, route, ego state, the agents' next 4 s from the drive log) so each plan can be scored with the PDM score.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import shapely

from ..contract import NUM_POSES, POSE_DIM
from ..geometry import box_corners, rotate_vectors
from ..model.config import ModelConfig, load_config
from ..pdm.constants import NUM_STATES, STEPS_PER_POSE
from ..pdm.metrics import classify_contact
from ..pdm.scene import AgentTrack, EgoState, MapGeometry, ScoringScene
from ..pdm.tracker import LQRTracker
from ..pdm.trajectory import interpolate_trajectory
from ..runtime.types import SensorFrame
from .expert import camera_rig_for
from .map_adapter import agent_tracks, read_road_map, route_centerline, to_map_geometry
from .metadrive_env import SIM_DT_S, make_replay_env, make_scene_env, place_ego
from .scenes import SceneSpec, scene_of_seed
from .sensors.camera import CameraRenderer
from .sensors.ego import driving_command, ego_frame_velocity
from .sensors.lidar import RayLidarSpec, cast_lidar
from .world import WorldState, read_world

PlannerFn = Callable[..., np.ndarray]
# on_plan(frame, world, road_map): called at every planning step with what the planner saw (data generation).
PlanObserver = Callable[[SensorFrame, WorldState, object], None]
ROUTE_DONE_M = 5.0  # the route counts as completed when the ego is this close to its end


@dataclass(frozen=True)
class ReplayScene:
    """Scene ``index`` of a ScenarioNet-format folder with ``num_scenarios`` scenes (see ``sim.recording``)."""

    data_dir: str
    index: int
    num_scenarios: int
    name: str = ""  # the scenario id (e.g. "bench-1000000"); "" for "replay-<index>"
    length_s: float | None = None  # logged duration; driving longer runs past the other agents' logs
    family: str = ""  # the scene set's group this scene belongs to (the generalization suite's families)


@dataclass(frozen=True)
class Contact:
    """The first touch of one agent during a drive, classified by the PDM score's no-collision rule."""

    time_s: float
    agent_id: str
    kind: str  # stopped_ego, stopped_track, active_rear, active_front, active_lateral
    at_fault: bool


@dataclass
class DriveLog:
    """What happened in one closed-loop drive (world frame, 0.1 s steps)."""

    scene_id: str
    times: np.ndarray  # (T,)
    ego_poses: np.ndarray  # (T, 3)
    ego_speeds: np.ndarray  # (T,)
    plan_times: np.ndarray  # (P,)
    plans: np.ndarray  # (P, 8, 3) ego frame at each plan time
    scoring_scenes: list[ScoringScene] = field(default_factory=list)  # plans with a full 4 s log after them
    collision_time: float | None = None  # first contact with any agent
    collided_with: str | None = None
    contacts: list[Contact] = field(default_factory=list)  # every agent touched, at its first contact
    off_road_time: float | None = None
    route_length_m: float = 0.0
    progress_m: float = 0.0
    route_completed: bool = False
    end_reason: str = "duration"  # or route_completed, collision (stop_on_collision), left_route
    map: MapGeometry | None = field(default=None, repr=False)  # for plots and offline scoring
    route: shapely.LineString | None = field(default=None, repr=False)
    agents: list[AgentTrack] = field(default_factory=list, repr=False)  # agents present at t0, over the drive
    world_states: list[WorldState] = field(default_factory=list, repr=False)  # every 0.1 s step (ego = tracker's)
    plan_ego_states: list[EgoState] = field(default_factory=list, repr=False)  # the tracker's state at each plan

    @property
    def collided(self) -> bool:
        return self.collision_time is not None

    @property
    def at_fault_collision_time(self) -> float | None:
        """First contact the ego is to blame for (NAVSIM: it hit something ahead, a stopped agent, or sideways while
        spanning lanes or off the road); None if it was only ever hit."""
        return next((c.time_s for c in self.contacts if c.at_fault), None)

    @property
    def off_road(self) -> bool:
        return self.off_road_time is not None

    @property
    def route_completion(self) -> float:
        """Share of the route driven; 1 once the ego came within ROUTE_DONE_M of its end."""
        if self.route_completed:
            return 1.0
        return float(min(1.0, self.progress_m / self.route_length_m)) if self.route_length_m > 0 else 0.0


def _validate_plan(plan: np.ndarray) -> np.ndarray:
    plan = np.asarray(plan, dtype=np.float64)
    if plan.shape != (NUM_POSES, POSE_DIM) or not np.isfinite(plan).all():
        raise ValueError(f"planner_fn must return a finite ({NUM_POSES}, {POSE_DIM}) ego-frame trajectory, "
                         f"got shape {plan.shape}")
    return plan


def _with_ego(world: WorldState, ego: EgoState) -> WorldState:
    """The snapshot with the ego replaced by the tracker's state (the tracker is authoritative)."""
    world.ego_pose = ego.pose
    world.ego_velocity = rotate_vectors(np.array([ego.vx, ego.vy]), ego.heading)
    return world


def _overlapping(world: WorldState) -> np.ndarray:
    """Indices of the agents whose boxes overlap the ego's."""
    if world.num_agents == 0:
        return np.zeros(0, dtype=int)
    ego_poly = shapely.Polygon(box_corners(world.ego_pose, world.ego_length, world.ego_width))
    corners = box_corners(world.agent_poses, world.agent_sizes[:, 0], world.agent_sizes[:, 1])
    return np.flatnonzero(shapely.intersects(shapely.polygons(corners), ego_poly))


def _collision(world: WorldState) -> str | None:
    """Id of an agent whose box overlaps the ego's, or None."""
    hit = _overlapping(world)
    return world.agent_ids[int(hit[0])] if len(hit) else None


def _new_contacts(world: WorldState, ego_speed: float, map_geometry: MapGeometry, seen: set[str]) -> list[Contact]:
    """Contacts with agents not touched before, classified at this step."""
    out = []
    for i in _overlapping(world):
        agent_id = world.agent_ids[int(i)]
        if agent_id in seen:
            continue
        seen.add(agent_id)
        kind, at_fault = classify_contact(
            map_geometry, world.ego_pose, ego_speed, world.ego_length, world.ego_width, world.agent_poses[i],
            float(np.hypot(*world.agent_velocities[i])), float(world.agent_sizes[i, 0]), float(world.agent_sizes[i, 1]))
        out.append(Contact(float(world.t), agent_id, kind, at_fault))
    return out


def drive(
    scene: int | SceneSpec | ReplayScene,
    planner_fn: PlannerFn,
    duration_s: float = 20.0,
    *,
    config: ModelConfig | None = None,
    reactive_traffic: bool = False,
    initial_speed: float | None = None,
    camera_width: int = 960,
    lidar_spec: RayLidarSpec | None = None,
    with_sensors: bool = True,
    stop_on_collision: bool = False,
    on_plan: PlanObserver | None = None,
    displacements: dict[int, tuple[float, float]] | None = None,
    max_route_deviation_m: float | None = None,
) -> DriveLog:
    """Drive ``scene`` with ``planner_fn`` for ``duration_s``.

    scene: a procedural-map seed (the ``legacy`` scene distribution), a :class:`~.scenes.SceneSpec` (procedural, or a
    SUMO network that is generated and replayed), or a :class:`ReplayScene`. planner_fn(frame) -> (8,3) ego-frame
    trajectory; planners with ``needs_world = True`` get ``(frame, world, route)``. Procedural scenes have IDM
    (reactive) traffic; replayed scenes are non-reactive unless ``reactive_traffic``. ``initial_speed`` [m/s]
    overrides the ego's starting speed along its heading (default: a SceneSpec's ``initial_speed``, else the
    simulator's). ``with_sensors=False`` skips cameras and LiDAR (for planners that do not read them).
    ``on_plan`` sees every planning step's frame, world and road map. ``displacements`` maps a 0.1 s step to a
    (lateral [m, to the left], heading [rad]) jump of the ego before that step (recovery data), speed kept; a jump
    that would land on an agent goes to the mirrored side instead, or is skipped. ``max_route_deviation_m`` ends the
    drive once the ego is farther than this from its route (on-policy data collection); ``stop_on_collision`` at the
    first contact. ``DriveLog.end_reason`` says which end it met.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    config = config or load_config("navsim")
    if isinstance(scene, (int, np.integer)) and not isinstance(scene, bool):
        scene = scene_of_seed(int(scene), "legacy")
    with _scene_env(scene, duration_s, reactive_traffic) as (env, reset_seed, scene_id):
        if initial_speed is None and isinstance(scene, SceneSpec) and scene.kind == "procedural":
            initial_speed = scene.initial_speed
        return _drive(env, reset_seed, scene_id, planner_fn, duration_s, config, initial_speed, camera_width,
                      lidar_spec or RayLidarSpec(), with_sensors, stop_on_collision, on_plan, displacements or {},
                      max_route_deviation_m)


@contextlib.contextmanager
def _scene_env(scene, duration_s: float, reactive_traffic: bool):
    """(env, reset seed, scene id) for any scene; closes the env (and removes a generated scene's files) after."""
    with contextlib.ExitStack() as stack:
        if isinstance(scene, SceneSpec) and scene.kind == "sumo":
            scene = stack.enter_context(generated_sumo_scene(scene, duration_s))
        if isinstance(scene, ReplayScene):
            env = make_replay_env(scene.data_dir, num_scenarios=scene.num_scenarios, reactive_traffic=reactive_traffic)
            reset_seed, scene_id = scene.index, scene.name or f"replay-{scene.index}"
        elif isinstance(scene, SceneSpec):
            env = make_scene_env(scene, ego_control="external")
            reset_seed, scene_id = scene.seed, scene.scene_id
        else:
            raise ValueError(f"scene must be a seed (int), a SceneSpec or a ReplayScene, got {type(scene).__name__}")
        stack.callback(env.close)
        yield env, reset_seed, scene_id


SUMO_WARMUP_S = 60.0  # SUMO traffic fills the generated network for this long before a scene starts


@contextlib.contextmanager
def generated_sumo_scene(spec: SceneSpec, duration_s: float):
    """A SUMO scene generated into a temporary ScenarioNet folder, as a :class:`ReplayScene` (removed on exit)."""
    from metadrive.scenario.utils import save_dataset

    from .sumo_scenes import build_scenario

    with tempfile.TemporaryDirectory(prefix=f"{spec.scene_id}-") as tmp:
        scenario = build_scenario(spec, duration_s=duration_s + 1.0, warmup_s=SUMO_WARMUP_S,
                                  scenario_id=spec.scene_id)
        with contextlib.redirect_stdout(io.StringIO()):  # save_dataset prints a banner
            save_dataset([scenario], "generated", "v1", tmp)
        yield ReplayScene(tmp, 0, 1, name=spec.scene_id, length_s=duration_s + 1.0)


def _drive(env, reset_seed, scene_id, planner_fn, duration_s, config, initial_speed, camera_width, lidar_spec,
           with_sensors, stop_on_collision, on_plan, displacements, max_route_deviation_m) -> DriveLog:
    env.reset(seed=reset_seed)
    road_map = read_road_map(env)
    world = read_world(env, 0.0)
    route = route_centerline(env, fallback=_logged_ego_path(env))
    map_geometry = to_map_geometry(road_map)
    renderer = CameraRenderer(road_map, camera_rig_for(config, camera_width)) if with_sensors else None
    tracker = LQRTracker()
    heading = float(world.ego_pose[2])
    v0 = ego_frame_velocity(world.ego_velocity, heading)
    if initial_speed is not None:
        v0 = np.array([float(initial_speed), 0.0])
    ego = EgoState(float(world.ego_pose[0]), float(world.ego_pose[1]), heading, float(v0[0]), float(v0[1]))
    wheel_base = tracker.params.wheel_base
    place_ego(env, ego.x, ego.y, ego.heading, rotate_vectors(np.array([ego.vx, ego.vy]), ego.heading))

    n_steps = int(round(duration_s / SIM_DT_S))
    states: list[WorldState] = []
    times, poses, speeds, plan_times, plans, plan_steps, plan_egos = [], [], [], [], [], [], []
    log = DriveLog(scene_id, np.zeros(0), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((0, NUM_POSES, 3)))
    s_start = route.project(shapely.Point(ego.x, ego.y))
    log.route_length_m = max(route.length - s_start, 0.0)
    reference = None
    prev_velocity = None
    touched: set[str] = set()
    plan_step = 0
    for step in range(n_steps + 1):
        t = step * SIM_DT_S
        world = _with_ego(read_world(env, t), ego)
        if step in displacements:
            moved = _free_displacement(world, ego, *displacements[step])
            if moved is not None:
                ego, world = moved, _with_ego(world, moved)
                place_ego(env, ego.x, ego.y, ego.heading, rotate_vectors(np.array([ego.vx, ego.vy]), ego.heading))
        states.append(world)
        times.append(t)
        poses.append(ego.pose)
        speeds.append(ego.speed)
        contacts = _new_contacts(world, ego.speed, map_geometry, touched)
        if contacts and log.collision_time is None:
            log.collision_time, log.collided_with = t, contacts[0].agent_id
        log.contacts.extend(contacts)
        corners = box_corners(ego.pose, world.ego_length, world.ego_width)
        if log.off_road_time is None and not map_geometry.contains_xy(corners).all():
            log.off_road_time = t
        log.progress_m = max(log.progress_m, route.project(shapely.Point(ego.x, ego.y)) - s_start)
        if route.length - route.project(shapely.Point(ego.x, ego.y)) < ROUTE_DONE_M:
            log.route_completed = True
        deviation = route.distance(shapely.Point(ego.x, ego.y))
        if max_route_deviation_m is not None and deviation > max_route_deviation_m:
            log.end_reason = "left_route"
        elif stop_on_collision and log.collided:
            log.end_reason = "collision"
        elif log.route_completed:
            log.end_reason = "route_completed"
        if step == n_steps or log.end_reason != "duration":
            break
        if step % STEPS_PER_POSE == 0:
            velocity = np.array([ego.vx, ego.vy])
            accel = np.array([ego.ax, ego.ay]) if prev_velocity is None else (velocity - prev_velocity) / (
                STEPS_PER_POSE * SIM_DT_S)
            frame = _make_frame(env, world, route, renderer, lidar_spec, velocity, accel, t, with_sensors)
            prev_velocity = velocity
            if on_plan is not None:
                on_plan(frame, world, road_map)
            if getattr(planner_fn, "needs_world", False):
                plan = _validate_plan(planner_fn(frame, world, route))
            else:
                plan = _validate_plan(planner_fn(frame))
            reference = interpolate_trajectory(plan, ego.pose)
            plan_step = step
            plan_times.append(t)
            plans.append(plan)
            plan_steps.append(step)
            plan_egos.append(ego)
        control = tracker.control(ego, reference, step - plan_step)
        ego = tracker.propagate(ego, control)
        env.step([0.0, 0.0])
        place_ego(env, ego.x, ego.y, ego.heading, rotate_vectors(np.array([ego.vx, ego.vy]), ego.heading))

    log.times, log.ego_poses, log.ego_speeds = np.array(times), np.array(poses), np.array(speeds)
    log.plan_times = np.array(plan_times)
    log.plans = np.array(plans).reshape(-1, NUM_POSES, POSE_DIM)
    log.map, log.route, log.agents = map_geometry, route, agent_tracks(states)
    log.world_states, log.plan_ego_states = states, plan_egos
    for step, ego_at, t in zip(plan_steps, plan_egos, plan_times):
        future = states[step:step + NUM_STATES]
        if len(future) < NUM_STATES:
            break
        log.scoring_scenes.append(ScoringScene(
            scene_id=f"{scene_id}@{t:.1f}", map=map_geometry, route=route, ego=ego_at, agents=agent_tracks(future),
            ego_length=states[0].ego_length, ego_width=states[0].ego_width, wheel_base=wheel_base,
        ))
    return log


def displaced(ego: EgoState, lateral_m: float, heading_rad: float) -> EgoState:
    """``ego`` moved ``lateral_m`` to its left and turned by ``heading_rad``; its ego-frame velocity is kept."""
    return replace(ego, x=ego.x - np.sin(ego.heading) * lateral_m, y=ego.y + np.cos(ego.heading) * lateral_m,
                   heading=ego.heading + heading_rad)


def _free_displacement(world: WorldState, ego: EgoState, lateral_m: float, heading_rad: float,
                       margin_m: float = 0.5) -> EgoState | None:
    """``ego`` displaced as asked, or to the mirrored side if that lands on an agent; None if both sides do."""
    for sign in (1.0, -1.0):
        moved = displaced(ego, sign * lateral_m, sign * heading_rad)
        probe = replace(world, ego_pose=moved.pose, ego_length=world.ego_length + 2 * margin_m,
                        ego_width=world.ego_width + 2 * margin_m)
        if _collision(probe) is None:
            return moved
    return None


def _make_frame(env, world, route, renderer, lidar_spec, velocity, accel, t, with_sensors) -> SensorFrame:
    if with_sensors:
        cameras = renderer.render(world)
        points = cast_lidar(env, world, lidar_spec)
    else:
        blank = np.zeros((9, 16, 3), np.uint8)
        cameras, points = (blank, blank, blank), np.zeros((0, 3), np.float32)
    return SensorFrame(cameras=cameras, lidar_points=points, velocity=(float(velocity[0]), float(velocity[1])),
                       acceleration=(float(accel[0]), float(accel[1])),
                       command=driving_command(route, world.ego_pose), stamp=float(t))


def _logged_ego_path(env) -> np.ndarray | None:
    """The route of a replayed scenario (a route fallback), or None for procedural maps: the recorded route
    (``sim.recording``: the logged path continued to the destination) when there is one, else the logged ego path."""
    data_manager = getattr(env.engine, "data_manager", None)
    scenario = getattr(data_manager, "current_scenario", None) if data_manager is not None else None
    if not scenario:
        return None
    recorded = scenario["metadata"].get("route")
    if recorded is not None and len(recorded) >= 2:
        # ScenarioEnv re-centres tracks and map on the ego's first position, not our metadata: shift it the same way.
        shift = np.asarray(scenario["metadata"].get("old_origin_in_current_coordinate", (0.0, 0.0)), dtype=np.float64)
        return np.asarray(recorded, dtype=np.float64)[:, :2] + shift[:2]
    sdc = str(scenario["metadata"]["sdc_id"])
    track = scenario["tracks"][sdc]["state"]
    valid = np.asarray(track["valid"], dtype=bool)
    return np.asarray(track["position"], dtype=np.float64)[valid, :2]

