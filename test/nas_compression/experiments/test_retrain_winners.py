"""JASQ on the planner task with the hand-made backbone seeded, resumable; then ``retrain-winners`` retrains the
references and the winner from scratch and re-times them interleaved."""

from __future__ import annotations

import json
import math

import pytest

from nas_compression import cli
from nas_compression.measure.evaluators import SerialEvaluator
from nas_compression.space.sampling import COMPACT_SPACE
from nas_compression.strategies.evolution import CANDIDATES
from nas_compression.strategies.jasq import JasqConfig, run_jasq
from nas_compression.tasks.planner import PlannerBudget, PlannerTask

# 32 train and 8 val samples in the shared planner data set (conftest).
TINY_BUDGET = PlannerBudget(
    train_steps=2, batch_size=4, train_samples=16, val_samples=8, calib_batches=1, latency_repeats=2
)


@pytest.mark.slow
def test_planner_search_seeds_tiny_runs_two_generations_and_resumes(planner_data, tmp_path):
    task = PlannerTask(str(planner_data), TINY_BUDGET)
    cfg = JasqConfig(population=2, budget=3, batch=1, selection="nsga2", seed=0)
    out = tmp_path / "run"
    first = run_jasq(task, cfg, out, SerialEvaluator(), COMPACT_SPACE, progress=False, stop_after=2)
    assert [r["hash"] for r in first] == [g.hash for g in task.seeds]  # generation 0 = the hand-made backbone
    kept = (out / CANDIDATES).read_text().splitlines()
    records = run_jasq(task, cfg, out, SerialEvaluator(), COMPACT_SPACE, progress=False)
    lines = (out / CANDIDATES).read_text().splitlines()
    assert lines[:2] == kept and len(lines) == 3  # resumed: nothing lost, nothing repeated
    child = records[-1]
    assert child["step"] == 1 and child["parent"] in {g.hash for g in task.seeds}
    assert child["metrics"]["inherited_tensors"] > 0 and math.isfinite(child["metrics"]["ade_4s"])
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "planner" and config["task_settings"]["budget"]["train_steps"] == 2
    for name in ("front.png", "front.md", "best.json", "front.jsonl"):
        assert (out / name).is_file(), name
    # The like-for-like check retrains the references and one challenger from scratch and re-times them together.
    assert cli.main(["retrain-winners", "--results", str(out), "--top", "1", "--rounds", "2"]) == 0
    rows = json.loads((out / "compare.json").read_text())
    assert [r["role"] for r in rows] == ["reference", "reference", "challenger"]
    assert all(r["scratch_metrics"]["inherited_tensors"] == 0 and r["interleaved_latency_ms"] > 0 for r in rows)
    assert rows[2]["hash"] == child["hash"] and "| challenger |" in (out / "compare.md").read_text()
    # Other proxy settings in the same directory are refused rather than mixed.
    other = PlannerTask(str(planner_data), PlannerBudget(**{**TINY_BUDGET.__dict__, "train_steps": 3}))
    with pytest.raises(ValueError, match="other settings"):
        run_jasq(other, cfg, out, SerialEvaluator(), COMPACT_SPACE, progress=False)
