"""The planner proxy task (issue 7): a genome inside the tiny planner, trained briefly on a generated dataset,
quantized and scored on the val split; JASQ on it with the hand-made backbone seeded, resumable."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from safetensors.torch import load_file

from diffusiondrive_ros.data.dataset import DrivingDataset
from diffusiondrive_ros.data.generate import generate
from diffusiondrive_ros.model import load_config
from nas_compression import cli
from nas_compression.evaluate.candidate import evaluate_planner
from nas_compression.evaluate.evaluator import SerialEvaluator
from nas_compression.evaluate.planner import PlannerBudget, evenly_spaced, quality_from_error
from nas_compression.search.jasq import CANDIDATES, JasqConfig, run_jasq
from nas_compression.search.planner_report import beats, latency_error_front, reference_report
from nas_compression.search.tasks import PlannerTask, planner_seed_genomes, planner_template
from nas_compression.space.sampling import COMPACT_SPACE

SOURCE = "diffusiondrive_ros.data.synthetic:iter_synthetic_samples"
# Seeds 0..9 put scenes 2 and 9 in the 10 % validation split: 32 train and 8 val samples.
TINY_BUDGET = PlannerBudget(
    train_steps=2, batch_size=4, train_samples=16, val_samples=8, calib_batches=1, latency_repeats=2
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("planner_data")
    generate(
        out,
        scenes=10,
        seed=0,
        workers=0,
        config=load_config("tiny"),
        samples_per_scene=4,
        source=SOURCE,
        progress=False,
    )
    assert len(DrivingDataset(out, split="val")) > 0 and len(DrivingDataset(out, split="train")) > 0
    return out


def _rec(h, quality, latency, ade=1.0):
    metrics = {
        "accuracy": quality,
        "latency_ms": latency,
        "ade_4s": ade,
        "min_ade": ade / 2,
        "mode_accuracy": 0.5,
        "size_bytes": 1000,
        "params": 100,
    }
    return {"hash": h, "metrics": metrics, "objective": quality}


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


def test_reference_report_finds_faster_no_worse_candidates():
    ref = _rec("ref", 0.5, 10.0)
    faster_same = _rec("a", 0.5, 8.0)
    faster_worse = _rec("b", 0.4, 5.0, ade=1.5)
    slower_better = _rec("c", 0.6, 12.0, ade=0.7)
    assert beats(faster_same, ref) and not beats(faster_worse, ref) and not beats(slower_better, ref)
    assert not beats(ref, ref)
    records = [ref, faster_same, faster_worse, slower_better]
    assert [r["hash"] for r in latency_error_front(records)] == ["b", "a", "c"]
    seeds = planner_seed_genomes("tiny")
    ref["hash"] = seeds[0].hash
    text = reference_report(records, seeds)
    assert "1 candidate(s) beat it" in text and "| faster, no worse | a |" in text and "20 % less" in text


def test_search_cli_planner_needs_data(tmp_path, capsys):
    argv = ["search", "jasq", "--task", "planner", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    assert "--data" in capsys.readouterr().err
    assert cli.main([*argv, "--data", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.slow
def test_proxy_task_evaluates_a_genome_with_finite_metrics_and_inheritance(data_dir, tmp_path):
    task = PlannerTask(str(data_dir), TINY_BUDGET)
    job = task.job(task.seeds[0], seed=0)
    job["weights_out"] = str(tmp_path / "parent.safetensors")
    m = evaluate_planner(job)
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
    inherited = evaluate_planner(job)["inherited_tensors"]
    assert 100 < inherited < len(load_file(tmp_path / "parent.safetensors"))


@pytest.mark.slow
def test_planner_search_seeds_tiny_runs_two_generations_and_resumes(data_dir, tmp_path):
    task = PlannerTask(str(data_dir), TINY_BUDGET)
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
    assert cli.main(["compare-planner", "--results", str(out), "--top", "1", "--rounds", "2"]) == 0
    rows = json.loads((out / "compare.json").read_text())
    assert [r["role"] for r in rows] == ["reference", "reference", "challenger"]
    assert all(r["scratch_metrics"]["inherited_tensors"] == 0 and r["interleaved_latency_ms"] > 0 for r in rows)
    assert rows[2]["hash"] == child["hash"] and "| challenger |" in (out / "compare.md").read_text()
    # Other proxy settings in the same directory are refused rather than mixed.
    other = PlannerTask(str(data_dir), PlannerBudget(**{**TINY_BUDGET.__dict__, "train_steps": 3}))
    with pytest.raises(ValueError, match="other settings"):
        run_jasq(other, cfg, out, SerialEvaluator(), COMPACT_SPACE, progress=False)
