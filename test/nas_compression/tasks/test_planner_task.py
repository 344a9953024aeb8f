"""The planner task: a genome inside the tiny planner, trained briefly on a generated dataset, quantized and scored
on the val split, inheriting its parent's weights where names and shapes match."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from safetensors.torch import load_file

from diffusiondrive_ros.model import load_config
from nas_compression.strategies.inheritance import evaluate_inheriting
from nas_compression.tasks.planner import (
    PlannerBudget,
    PlannerTask,
    evaluate_planner,
    evenly_spaced,
    planner_seed_genomes,
    planner_template,
    quality_from_error,
)

# 32 train and 8 val samples in the shared planner data set (conftest).
TINY_BUDGET = PlannerBudget(
    train_steps=2, batch_size=4, train_samples=16, val_samples=8, calib_batches=1, latency_repeats=2
)


def test_quality_is_a_decreasing_map_of_the_error_into_0_1():
    assert quality_from_error(0.0) == 1.0
    assert quality_from_error(1.0) == 0.5
    assert quality_from_error(0.3) > quality_from_error(0.4) > 0
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            quality_from_error(bad)


def test_budget_and_subset_rules():
    with pytest.raises(ValueError, match="quality_metric"):
        PlannerBudget(quality_metric="fde")
    with pytest.raises(ValueError, match="train_steps"):
        PlannerBudget(train_steps=0)
    assert evenly_spaced(10, 0).tolist() == list(range(10))
    assert evenly_spaced(10, 20).tolist() == list(range(10))
    idx = evenly_spaced(100, 5)
    assert idx.tolist() == [0, 25, 50, 74, 99] and len(np.unique(idx)) == 5


def test_seeds_are_the_hand_made_tiny_backbone():
    cfg = load_config("tiny")
    int8, fp16 = planner_seed_genomes("tiny")
    assert int8 == planner_template("tiny")
    assert int8.image.to_spec() == cfg.backbone.image_encoder
    assert int8.lidar.to_spec() == cfg.backbone.lidar_encoder
    assert fp16.image.to_spec() == cfg.backbone.image_encoder and fp16.linear_bits == 16
    assert {s.bits for s in fp16.image.stages} == {16} and {s.bits for s in int8.lidar.stages} == {8}


@pytest.mark.slow
def test_proxy_task_evaluates_a_genome_with_finite_metrics_and_inheritance(planner_data, tmp_path):
    task = PlannerTask(str(planner_data), TINY_BUDGET)
    job = task.job(task.seeds[0], seed=0)
    job["weights_out"] = str(tmp_path / "parent.safetensors")
    m = evaluate_inheriting(evaluate_planner, job)
    for key in ("ade_4s", "min_ade", "mode_accuracy", "float_ade_4s", "latency_ms", "last_loss"):
        assert math.isfinite(m[key]), key
    assert 0 < m["accuracy"] <= 1 and m["accuracy"] == pytest.approx(1 / (1 + m["ade_4s"]))
    assert m["min_ade"] <= m["ade_4s"] + 1e-9  # the best mode is never worse than the chosen one
    assert 0 <= m["mode_accuracy"] <= 1 and m["latency_ms"] > 0 and m["inherited_tensors"] == 0
    assert m["size_bytes"] < 4 * m["params"]  # INT8 encoders: fewer deployed bytes than float32
    # A child with a narrower LiDAR stage 4 inherits every tensor whose name and shape still match, and only those.
    parent = task.seeds[0]
    stages = (*parent.lidar.stages[:3], dataclasses.replace(parent.lidar.stages[3], width_mult=0.5))
    child = dataclasses.replace(parent, lidar=dataclasses.replace(parent.lidar, stages=stages))
    task.validate(child)
    job = task.job(child, seed=1) | {"parent_weights": str(tmp_path / "parent.safetensors")}
    inherited = evaluate_inheriting(evaluate_planner, job)["inherited_tensors"]
    assert 100 < inherited < len(load_file(tmp_path / "parent.safetensors"))
