"""Offline scoring: scene files dumped from the benchmark, plans files, and the `score` command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from diffusiondrive_ros.evaluation.offline_scoring import (
    EXPERT_PLANS_FILE,
    dump_scenes,
    load_plans,
    save_plans,
    scene_file_name,
    score_plan_file,
)
from diffusiondrive_ros.evaluation.scene_sets import load_scene_set as load_benchmark

pytestmark = pytest.mark.sim  # needs MetaDrive: skipped without it (test/conftest.py)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory, benchmark_dir, tiny_config):
    out = tmp_path_factory.mktemp("scenes")
    written = dump_scenes(load_benchmark(benchmark_dir)[:1], out, config=tiny_config, duration_s=5.5, progress=False)
    assert len(written) == 4  # plans at 0 .. 1.5 s have 4 s of log after them
    return out


def test_scene_file_names_are_safe():
    assert scene_file_name("bench-1000000@2.5") == "bench-1000000_t2.5.npz"
    assert scene_file_name("a/b c") == "a_b_c.npz"


def test_expert_plans_score_high_and_standing_still_scores_lower(scene_dir, tmp_path):
    table = score_plan_file(scene_dir, scene_dir / EXPERT_PLANS_FILE)
    assert len(table.results) == 4 and table.means["pdms"] > 0.8
    plans = load_plans(scene_dir / EXPERT_PLANS_FILE)
    still = save_plans(tmp_path / "still.npz", list(plans), np.zeros((len(plans), 8, 3)))
    assert score_plan_file(scene_dir, still).means["ep"] < 0.2


def test_plans_files_are_validated(scene_dir, tmp_path):
    with pytest.raises(ValueError, match="trajectories"):
        save_plans(tmp_path / "bad.npz", ["a"], np.zeros((1, 7, 3)))
    one = save_plans(tmp_path / "one.npz", ["bench-x@0.0"], np.zeros((1, 8, 3)))
    with pytest.raises(ValueError, match="unknown scenes"):
        score_plan_file(scene_dir, one)
    plans = load_plans(scene_dir / EXPERT_PLANS_FILE)
    first = next(iter(plans))
    partial = save_plans(tmp_path / "partial.npz", [first], plans[first][None])
    with pytest.raises(ValueError, match="no plan"):
        score_plan_file(scene_dir, partial)
    assert len(score_plan_file(scene_dir, partial, allow_missing=True).results) == 1


def test_score_command_prints_and_writes_json(scene_dir, tmp_path, capsys):
    from diffusiondrive_ros.commands import score

    parser = argparse.ArgumentParser()
    score.add_arguments(parser)
    out = tmp_path / "scores.json"
    args = parser.parse_args(["--scenes", str(scene_dir), "--plans", str(scene_dir / EXPERT_PLANS_FILE),
                              "--out", str(out)])
    assert score.run(args) == 0
    assert "pdms" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert len(data["scenes"]) == 4 and data["means"]["pdms"] > 0.8
