"""DSO-NAS and EGS on the planner task, through the same strategy loops as on classification."""

from __future__ import annotations

import math

import pytest

from nas_compression.strategies.dso import DSOConfig, run_dso, split_steps
from nas_compression.strategies.egs import EGSConfig, run_egs
from nas_compression.tasks.planner import PlannerBudget, PlannerTask


@pytest.mark.slow
def test_planner_supernet_searches_return_deployable_planner_genomes(planner_data):
    budget = PlannerBudget(train_steps=2, batch_size=4, train_samples=16, val_samples=8)
    task = PlannerTask(str(planner_data), budget)
    pre, search = split_steps(9)
    dso = run_dso(task, DSOConfig(pre, search, gamma=2.0, prune_every=1, budget="flops"), progress=False)
    assert dso.train_steps == 9 and dso.search_seconds > 0
    first, last = dso.history[0], dso.history[-1]
    assert last["nonzero_lambdas"] < first["nonzero_lambdas"]  # the L1 proximal steps zeroed edges
    assert sum(last["edges"].values()) < sum(first["edges"].values())  # and the rebuild dropped them
    egs = run_egs(task, EGSConfig(search_steps=4), progress=False)
    assert [h["tau"] for h in egs.history][0] == 5.0 and egs.history[-1]["tau"] == pytest.approx(1.0)
    for res in (dso, egs):
        task.validate(res.genome)
        assert set(res.archs) == {"image", "lidar"} and all(math.isfinite(h["loss"]) for h in res.history[1:])
