"""EAT-NAS: elastic perturbations, the transfer seeded by the small-task winner, the search-cost report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas_compression.space.genome import StageGene, genome_from_json
from nas_compression.space.sampling import SearchSpace
from nas_compression.strategies.eat import (
    EATConfig,
    cost_to_reach,
    elastic_perturbation,
    perturb_stage,
    run_eat,
    search_cost_saved,
    transfer,
)
from nas_compression.tasks.classify import ClassifyBudget, ClassifyTask, classify_template

SPACE = SearchSpace(depths=(1, 2), width_mults=(0.5, 1.0, 1.5), ops=(("basic", 1), ("sepconv", 1), ("mbconv", 3)))


def test_perturbations_are_elastic_steps():
    rng = np.random.default_rng(0)
    s = StageGene("sepconv", 3, 1, 1.0, 1, "identity", 8)
    widths = {perturb_stage(s, "width", rng, SPACE).width_mult for _ in range(20)}
    assert widths == {0.5, 1.5}  # one step either way, never two
    assert {perturb_stage(s, "depth", rng, SPACE).depth for _ in range(20)} <= {1, 2}
    assert perturb_stage(s, "kernel", rng, SPACE).kernel != 3
    assert perturb_stage(s, "skip", rng, SPACE).skip == "none"
    assert perturb_stage(s, "op", rng, SPACE).block != "sepconv"
    g = classify_template("mnist")
    p = elastic_perturbation(g, rng, SPACE, changes=1)
    assert sum(a != b for a, b in zip(g.image.stages, p.image.stages)) <= 1


def test_transfer_keeps_choices_in_the_target_layout():
    small = classify_template("digits")
    stages = tuple(StageGene("mbconv", 5, 2, 0.5, 3, "none", 16) for _ in range(4))
    basic = small.__class__(image=small.image.__class__(**{**small.image.__dict__, "stages": stages}))
    moved = transfer(basic, classify_template("mnist"))
    assert moved.image.stages == stages
    assert moved.image.strides == classify_template("mnist").image.strides


def _rec(step, obj, secs):
    return {"step": step, "slot": 0, "objective": obj, "metrics": {"eval_seconds": secs}}


def test_cost_report():
    scratch = [_rec(0, 0.2, 1), _rec(1, 0.5, 1), _rec(2, 0.7, 1)]
    assert cost_to_reach(scratch, 0.6) == {"reached": True, "evaluations": 3, "eval_seconds": 3, "best": 0.7}
    report = search_cost_saved([_rec(0, 0.1, 0.25)] * 2, [_rec(0, 0.65, 1.0)], scratch)
    assert report["eat"]["evaluations"] == 3 and report["target_evaluations_saved"] == 2
    assert report["seconds_saved"] == pytest.approx(3 - 1.5)


@pytest.mark.slow
def test_eat_transfer_starts_from_the_small_task_winner(tmp_path):
    small = ClassifyTask("digits", ClassifyBudget(epochs=1.0, batch_size=32, train_subset=300))
    target = ClassifyTask("digits", ClassifyBudget(epochs=1.0, batch_size=32))
    cfg = EATConfig(3, 4, 3, 5, 1, 5_000.0)
    res = run_eat(small, target, cfg, tmp_path, space=SPACE, scratch_budget=4)
    winner = max(res.small, key=lambda r: r["objective"])
    assert res.basic.hash == winner["hash"]
    first = genome_from_json(res.target[0]["genome"])
    assert first.image.stages == res.basic.image.stages  # the basic architecture itself seeds the population
    for r in res.target[:3]:  # the seeded population inherits the winner's trained weights
        assert r["metrics"]["inherited_tensors"] > 0
        changed = sum(a != b for a, b in zip(first.image.stages, genome_from_json(r["genome"]).image.stages))
        assert changed <= 2
    assert len(res.target) == 5 and len(res.scratch) == 4
    saved = json.loads((tmp_path / "eat.json").read_text())["cost"]
    assert saved["level"] == max(r["objective"] for r in res.target)
    assert (tmp_path / "best.json").is_file()
