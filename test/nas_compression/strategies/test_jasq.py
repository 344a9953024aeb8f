"""JASQ on MNIST-5k: improves its objective over the initial population; resumes after a kill; Pareto utilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas_compression.measure.evaluators import ProcessPoolEvaluator, SerialEvaluator
from nas_compression.space.sampling import SearchSpace
from nas_compression.strategies.evolution import CANDIDATES, Population
from nas_compression.strategies.jasq import JasqConfig, run_jasq
from nas_compression.strategies.pareto import jasq_objective, nondominated_ranks, pareto_front
from nas_compression.tasks.classify import ClassifyBudget, ClassifyTask

SMALL_SPACE = SearchSpace(depths=(1,), width_mults=(0.5, 1.0), ops=(("basic", 1), ("sepconv", 1), ("mbconv", 3)))


def _task(dataset: str = "mnist") -> ClassifyTask:
    return ClassifyTask(dataset, ClassifyBudget(epochs=1.0, batch_size=32, train_subset=600))


def _rec(acc, size, lat):
    return {"metrics": {"accuracy": acc, "size_bytes": size, "latency_ms": lat}, "objective": 0.0, "hash": "x"}


def test_objective_really_trades_size_for_accuracy():
    assert jasq_objective(0.9, 10_000, 10_000) == pytest.approx(0.9)
    assert jasq_objective(0.9, 5_000, 10_000) > jasq_objective(0.9, 10_000, 10_000)
    # A 2 % less accurate model at a quarter of the size wins with w = -0.07 (accuracy alone would not).
    assert jasq_objective(0.88, 2_500, 10_000) > jasq_objective(0.90, 10_000, 10_000)


def test_pareto_ranks():
    recs = [_rec(0.9, 100, 1.0), _rec(0.8, 50, 1.0), _rec(0.7, 100, 2.0), _rec(0.95, 200, 0.5)]
    ranks = nondominated_ranks(recs)
    assert list(ranks) == [0, 0, 1, 0]
    assert [r["metrics"]["size_bytes"] for r in pareto_front(recs)] == [50, 100, 200]


@pytest.mark.slow
def test_jasq_improves_and_resumes_without_losing_or_repeating(tmp_path):
    cfg = JasqConfig(population=3, budget=7, batch=1, target_bytes=20_000, seed=0)
    out = tmp_path / "run"
    first = run_jasq(_task(), cfg, out, SerialEvaluator(), SMALL_SPACE, progress=False, stop_after=4)
    assert len(first) == 4
    kept = (out / CANDIDATES).read_text().splitlines()
    records = run_jasq(_task(), cfg, out, SerialEvaluator(), SMALL_SPACE, progress=False)
    lines = (out / CANDIDATES).read_text().splitlines()
    assert lines[:4] == kept  # nothing lost
    assert len(lines) == cfg.budget  # nothing re-evaluated: one line per evaluation
    assert len({r["hash"] for r in records}) == cfg.budget
    initial = [r for r in records if r["step"] == 0]
    children = [r for r in records if r["step"] > 0]
    assert all(r["parent"] for r in children) and all(r["metrics"]["inherited_tensors"] > 0 for r in children)
    assert max(r["objective"] for r in records) > max(r["objective"] for r in initial)
    for name in ("front.png", "front.md", "best.json", "front.jsonl", "latency_table.json", "config.json"):
        assert (out / name).is_file(), name
    # A finished run resumed again evaluates nothing.
    run_jasq(_task(), cfg, out, SerialEvaluator(), SMALL_SPACE, progress=False)
    assert len((out / CANDIDATES).read_text().splitlines()) == cfg.budget


def test_resume_refuses_other_settings(tmp_path):
    cfg = JasqConfig(population=2, budget=2, seed=0)
    run_jasq(_task("digits"), cfg, tmp_path, SerialEvaluator(), SMALL_SPACE, progress=False, stop_after=0)
    with pytest.raises(ValueError, match="other settings"):
        run_jasq(
            _task("digits"),
            JasqConfig(population=2, budget=2, seed=1),
            tmp_path,
            SerialEvaluator(),
            SMALL_SPACE,
            progress=False,
        )


@pytest.mark.slow
def test_nsga2_policy_only_on_a_process_pool(tmp_path):
    cfg = JasqConfig(population=3, budget=5, batch=2, selection="nsga2", policy_only=True, target_bytes=5_000)
    records = run_jasq(_task("digits"), cfg, tmp_path, ProcessPoolEvaluator(workers=2), SMALL_SPACE, progress=False)
    assert len(records) == 5
    archs = {json.dumps(json.loads(r["genome"])["image"]["stages"][0]["block"]) for r in records}
    assert len(archs) == 1  # policy-only: one architecture, different precisions
    assert len({r["hash"] for r in records}) == 5


def test_ray_evaluator(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (make setup installs it)")
    from nas_compression.measure.evaluators import RayEvaluator

    ev = RayEvaluator()
    try:
        cfg = JasqConfig(population=2, budget=3, batch=1, target_bytes=5_000)
        records = run_jasq(_task("digits"), cfg, tmp_path, ev, SMALL_SPACE, progress=False)
        assert len(records) == 3
    finally:
        if ray.is_initialized():
            ray.shutdown()


def test_objective_selection_is_not_accuracy_only():
    cfg = JasqConfig(population=2, budget=2, target_bytes=10_000)
    pop = Population(cfg.population, cfg.selection)
    small = {**_rec(0.88, 2_500, 1.0), "objective": jasq_objective(0.88, 2_500, 10_000)}
    big = {**_rec(0.90, 10_000, 1.0), "objective": jasq_objective(0.90, 10_000, 10_000)}
    worse = {**_rec(0.5, 10_000, 1.0), "objective": jasq_objective(0.5, 10_000, 10_000)}
    for r in (big, small, worse):
        pop.add(r)
    assert pop.select_parent(np.random.default_rng(0)) is small
    assert worse not in pop.members
