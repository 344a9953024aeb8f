"""Scene distributions: seeds -> SceneSpecs, deterministic, within their ranges; the suite apart from training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from diffusiondrive_ros.sim.metadrive_env import BLOCKS, EXCLUDED_BLOCKS, TRAINING_SEEDS, split_of_seed
from diffusiondrive_ros.sim.scenes import (
    DISTRIBUTIONS,
    DIVERSE,
    SUITE_FAMILIES,
    SceneDistribution,
    SceneSpec,
    SumoNetSpec,
    get_distribution,
    legacy_traffic_density,
    scene_of_seed,
    suite_specs,
)

SEEDS = range(300)


def test_a_seed_is_always_the_same_scene_and_round_trips_through_a_dict():
    for seed in (0, 1, 7, 1234):
        spec = scene_of_seed(seed, "diverse")
        assert scene_of_seed(seed, "diverse") == spec
        assert SceneSpec.from_dict(spec.to_dict()) == spec


def test_legacy_is_the_scene_before_distributions():
    spec = scene_of_seed(3, "legacy")
    assert (spec.blocks, spec.lane_num, spec.lane_width, spec.cruise_speed, spec.traffic_mode) == (4, 3, 3.5, 10.0,
                                                                                                  "respawn")
    assert spec.traffic_density == legacy_traffic_density(3) and 0.05 <= spec.traffic_density <= 0.3
    assert spec.initial_speed is None and not spec.inverse_traffic and spec.block_weights == ()


def test_diverse_covers_its_ranges():
    specs = [DIVERSE.sample(s) for s in SEEDS]
    procedural = [s for s in specs if s.kind == "procedural"]
    sumo = [s for s in specs if s.kind == "sumo"]
    assert 0.15 < len(sumo) / len(specs) < 0.35
    assert {s.lane_num for s in procedural} == {1, 2, 3, 4}
    widths = np.array([s.lane_width for s in procedural])
    assert widths.min() >= 3.0 and widths.max() <= 4.5 and widths.max() - widths.min() > 1.2
    cruise = np.array([s.cruise_speed for s in specs])
    assert cruise.min() >= 6.0 and cruise.max() <= 25.0 and (cruise > 20).mean() > 0.15
    density = np.array([s.traffic_density for s in specs])
    assert density.min() >= 0.05 and density.max() <= 0.35
    assert {s.traffic_mode for s in specs} == {"respawn", "trigger", "hybrid"}
    assert 0.3 < np.mean([s.inverse_traffic for s in specs]) < 0.7
    assert {block for block, _ in DIVERSE.block_weights} == set(BLOCKS)
    assert {s.sumo.layout for s in sumo} == {"grid", "spider", "random"}
    for s in procedural:  # the ego starts at 0.5 .. 1.0 of its cruise speed
        assert 0.5 * s.cruise_speed - 1e-3 <= s.initial_speed <= s.cruise_speed + 1e-3
    assert all(s.initial_speed is None for s in sumo)  # a SUMO scene starts at its logged ego's speed


def test_excluded_blocks_are_refused_with_the_reason_on_record():
    assert set(EXCLUDED_BLOCKS).isdisjoint(BLOCKS)
    with pytest.raises(ValueError, match="unknown or excluded"):
        SceneSpec(seed=0, blocks="SB")
    with pytest.raises(ValueError, match="unknown or excluded"):
        SceneDistribution(name="x", block_weights=(("$", 1.0),))


@pytest.mark.parametrize("changes, message", [
    ({"traffic_mode": "chaos"}, "traffic_mode"),
    ({"traffic_density": 1.5}, "traffic_density"),
    ({"lane_num": 7}, "lane_num"),
    ({"cruise_speed": 0.0}, "speeds"),
    ({"kind": "sumo"}, "SumoNetSpec"),
    ({"kind": "teleport"}, "kind"),
])
def test_scene_specs_validate(changes, message):
    with pytest.raises(ValueError, match=message):
        SceneSpec(**{"seed": 0, **changes})
    with pytest.raises(ValueError, match="layout"):
        SumoNetSpec("maze", 3, 100.0, 0.0, 2, 3.5, 10.0, 1.0)


def test_the_suite_is_frozen_apart_from_training_and_shifted_from_it():
    specs = suite_specs(4)
    assert len(specs) == 4 * len(SUITE_FAMILIES) >= 24
    assert all(split_of_seed(s.seed) == "benchmark" for s in specs)
    assert not {s.seed for s in specs} & set(TRAINING_SEEDS)
    assert len({s.seed for s in specs}) == len(specs)
    assert suite_specs(4) == specs
    families = {s.family: [x for x in specs if x.family == s.family] for s in specs}
    assert set(families) == set(SUITE_FAMILIES)
    # each family leaves the training distribution somewhere
    assert all(s.lane_width < DIVERSE.lane_width[0] for s in families["suite-narrow"])
    assert all(s.lane_num > DIVERSE.lane_num[1] for s in families["suite-wide"])
    assert all(s.traffic_density > DIVERSE.traffic_density[1] for s in families["suite-dense"])
    assert all(s.cruise_speed >= 22.0 for s in families["suite-motorway"])
    assert all(s.sumo.perturb_m > DIVERSE.sumo_perturb_m[1] for s in families["suite-sumo-grid"])
    # heavier traffic than training's typical scene (periods overlap only at training's busiest end)
    assert all(s.sumo.traffic_period_s < np.mean(DIVERSE.sumo_traffic_period_s) / 1.5
               for s in families["suite-sumo-random"])


def test_distributions_by_name_and_their_manifest_record():
    assert get_distribution("diverse") is DIVERSE and set(SUITE_FAMILIES) < set(DISTRIBUTIONS)
    with pytest.raises(ValueError, match="unknown scene distribution"):
        get_distribution("nope")
    record = DIVERSE.to_dict()
    assert record["name"] == "diverse" and record["block_weights"]["C"] == dict(DIVERSE.block_weights)["C"]
    assert "_legacy" not in record
    assert dataclasses.replace(DIVERSE, sumo_share=0.0).sample(1).kind == "procedural"
