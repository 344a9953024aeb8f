"""Generated SUMO networks become replayable scenes: map, ego, route, logged traffic; the expert drives them."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.sim.scenes import SceneSpec, SumoNetSpec
from diffusiondrive_ros.sim.sumo_scenes import netgenerate_args, route_without_return, sumo_available

needs_sumo = pytest.mark.skipif(not sumo_available(), reason="needs eclipse-sumo and sumolib")
GRID = SceneSpec(seed=11, kind="sumo", family="test", cruise_speed=12.0, lane_num=2, lane_width=3.5,
                 sumo=SumoNetSpec("grid", 3, 100.0, 10.0, 2, 3.5, 12.0, 1.0))


def test_a_route_ends_before_it_passes_a_place_twice():
    there = np.column_stack([np.arange(0, 200.0), np.zeros(200)])
    back = np.column_stack([np.arange(199.0, 100, -1), np.full(99, 5.0)])  # a U-turn 5 m beside the way out
    path = np.vstack([there, back])
    cut = route_without_return(path)
    assert len(cut) < len(path) and cut[-1, 1] == 5.0  # it keeps the turn but not the way back
    assert np.all(np.linalg.norm(cut[-1] - there[:-60], axis=1) > 14.9)  # nothing close to the start of the way out
    straight = np.column_stack([np.arange(0, 300.0), np.zeros(300)])
    assert len(route_without_return(straight)) == 300


@pytest.mark.parametrize("layout, flag", [("grid", "--grid"), ("spider", "--spider"), ("random", "--rand")])
def test_netgenerate_gets_the_layout_and_the_lane_layout(layout, flag):
    net = SumoNetSpec(layout, 4, 90.0, 12.0, 3, 3.2, 15.0, 1.0)
    args = netgenerate_args(net, seed=5)
    assert flag in args and args[args.index("--seed") + 1] == "5"
    assert args[args.index("--default.lanenumber") + 1] == "3" and args[args.index("--default.lanewidth") + 1] == "3.2"
    assert ("--perturb-x" in args) == (net.perturb_m > 0)


@needs_sumo
@pytest.mark.sim
@pytest.mark.slow
def test_a_sumo_scene_replays_and_the_expert_drives_it(tmp_path, tiny_config):
    from diffusiondrive_ros.evaluation.evaluate import evaluate_drive
    from diffusiondrive_ros.sim.closed_loop import drive, generated_sumo_scene
    from diffusiondrive_ros.sim.planners import IDMRoutePlanner
    from diffusiondrive_ros.sim.sumo_scenes import build_scenario

    scenario = build_scenario(GRID, duration_s=12.0, warmup_s=60.0, scenario_id="grid-11", work_dir=tmp_path)
    ego = scenario["tracks"]["ego"]["state"]
    assert ego["valid"].all() and len(ego["valid"]) == 121
    assert np.hypot(*ego["velocity"][0]) > 2.0  # the ego is moving at t0
    lanes = [f for f in scenario["map_features"].values() if f["type"].startswith("LANE")]
    assert len(lanes) > 10 and all(len(f["polygon"]) >= 4 for f in lanes)
    route = scenario["metadata"]["route"]
    assert np.linalg.norm(route[0] - ego["position"][0, :2]) < 1e-6 and len(route) > 100
    assert build_scenario(GRID, duration_s=12.0, warmup_s=60.0, scenario_id="grid-11")["tracks"].keys() == \
        scenario["tracks"].keys()  # deterministic
    with generated_sumo_scene(GRID, 12.0) as scene:
        log = drive(scene, IDMRoutePlanner(target_speed=12.0), 12.0, config=tiny_config, with_sensors=False)
    result = evaluate_drive("expert", log)
    assert result.means["dac"] == 1.0 and log.off_road_time is None
    assert result.means["pdms"] > 0.7 and log.progress_m > 50.0
