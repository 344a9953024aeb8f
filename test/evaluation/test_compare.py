"""Paired comparison of evaluations: per-scene differences, the bootstrap interval and its verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusiondrive_ros.evaluation.compare import load_results, paired_difference, scene_scores


def results(planner, scores):
    return {"scenes": {planner: [{"scene_id": f"s{i}", "error": None, "means": {"pdms": v}}
                                 for i, v in enumerate(scores)]}}


def test_a_consistent_improvement_is_shown_and_noise_is_not():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.9, 40)
    a = scene_scores(results("p", base), "p")
    better = paired_difference([a], [scene_scores(results("p", base + 0.05 + rng.normal(0, 0.02, 40)), "p")])
    assert better.verdict == "b higher" and 0.03 < better.mean_diff < 0.07 and better.ci_low > 0
    noise = paired_difference([a], [scene_scores(results("p", base + rng.normal(0, 0.1, 40)), "p")])
    assert noise.verdict == "no difference shown" and noise.ci_low < 0 < noise.ci_high
    assert better.scenes == 40 and better.runs == 1


def test_runs_pair_up_and_scenes_must_overlap(tmp_path):
    a = [{"x": 0.5, "y": 0.6}, {"x": 0.7, "y": 0.6}]
    b = [{"x": 0.8, "y": 0.6, "z": 1.0}, {"x": 0.8, "y": 0.6}]
    diff = paired_difference(a, b)
    assert diff.scenes == 2 and diff.mean_a == pytest.approx(0.6) and diff.mean_b == pytest.approx(0.7)
    with pytest.raises(ValueError, match="same number"):
        paired_difference(a, b[:1])
    with pytest.raises(ValueError, match="no scene"):
        paired_difference([{"x": 1.0}], [{"y": 1.0}])
    (tmp_path / "results.json").write_text(json.dumps(results("p", [0.1])))
    assert scene_scores(load_results(tmp_path), "p") == {"s0": 0.1}
    with pytest.raises(KeyError, match="planners"):
        scene_scores(load_results(tmp_path), "other")
