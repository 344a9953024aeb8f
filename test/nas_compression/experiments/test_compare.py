"""``nas-compress compare``: all four methods on one task at a tiny budget, one table, one plot, deployable ONNX;
on the 8x8 digits and on the planner task."""

from __future__ import annotations

import json
import math

import onnxruntime as ort
import pytest
import torch

from nas_compression.cli import main
from nas_compression.experiments.compare import CompareConfig, PlannerArena
from nas_compression.tasks.planner import PlannerTask

TINY_PLANNER = [
    "--train-steps", "2", "--batch-size", "4", "--train-samples", "16", "--val-samples", "8",
    "--latency-repeats", "2", "--rounds", "2",
]  # fmt: skip


@pytest.mark.slow
def test_compare_cli_writes_table_plot_and_runnable_onnx(tmp_path):
    out = tmp_path / "cmp"
    rc = main(["compare", "--task", "digits", "--budget", "4", "--final-epochs", "1", "--out", str(out)])
    assert rc == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["jasq", "dso", "egs", "eat"]
    table = (out / "compare.md").read_text()
    for r in rows:
        assert f"| {r['method']} |" in table
        d = {**r, **r["metrics"]}  # the deployed graph's facts beside the final network's metrics
        assert d["deployed_bytes"] > 0 and d["latency_ms"] > 0 and d["params"] > 0 and r["search_seconds"] > 0
        sess = ort.InferenceSession(d["onnx_path"], providers=["CPUExecutionProvider"])
        assert sess.run(None, {"image": torch.rand(1, 1, 8, 8).numpy()})[0].shape == (1, 10)
    assert (out / "compare.png").stat().st_size > 10_000


def test_compare_refuses_bad_settings():
    with pytest.raises(ValueError):
        CompareConfig(evaluations=2)
    with pytest.raises(ValueError):
        CompareConfig(methods=("darts",))


# -- the planner task ----------------------------------------------------------------------------------------------
def test_planner_compare_refuses_bad_settings(planner_data, tmp_path, capsys):
    with pytest.raises(ValueError, match="evaluations"):
        CompareConfig(evaluations=3)
    with pytest.raises(ValueError, match="unknown method"):
        CompareConfig(methods=("darts",))
    with pytest.raises(ValueError, match="rounds"):
        PlannerArena(PlannerTask(str(planner_data)), rounds=0)
    assert main(["compare", "--task", "planner", "--out", str(tmp_path / "x")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["compare", "--task", "planner", "--data", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~3 min of CPU (13 planner ONNX exports); more wall time on a loaded machine
def test_planner_compare_cli_writes_four_methods_and_the_reference(planner_data, tmp_path):
    import numpy as np

    out = tmp_path / "cmp"
    argv = ["compare", "--task", "planner", "--data", str(planner_data), "--budget", "4", *TINY_PLANNER]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    rows = report["rows"]
    assert [r["method"] for r in rows] == ["tiny (hand-made)", "jasq", "dso", "egs", "eat"]
    assert report["config"]["evaluations"] == 4 and report["config"]["budget"]["train_steps"] == 2
    table = (out / "compare.md").read_text()
    for r in rows:
        assert f"| {r['method']} |" in table
        m = r["metrics"]
        for key in ("ade_4s", "min_ade", "mode_accuracy", "fde_4s", "float_ade_4s"):
            assert math.isfinite(m[key]), (r["method"], key)
        assert m["inherited_tensors"] == 0  # every final genome trained from scratch
        assert r["deployed_bytes"] > 0 and r["latency_ms"] > 0 and m["params"] > 0
        sess = ort.InferenceSession(r["onnx_path"], providers=["CPUExecutionProvider"])
        feeds = {
            i.name: np.random.default_rng(0).random([d or 1 for d in i.shape]).astype(np.float32)
            for i in sess.get_inputs()
        }
        traj = sess.run(None, feeds)[0]
        assert traj.shape == (1, 8, 3) and np.isfinite(traj).all()
    searched = {r["method"]: r for r in rows[1:]}
    assert searched["jasq"]["evaluations"] == 4 and searched["jasq"]["search_steps"] == 8
    assert searched["eat"]["evaluations"] == 4 and searched["eat"]["search_steps"] == 2 * 1 + 2 * 2
    assert searched["dso"]["search_steps"] == 8 and searched["egs"]["search_steps"] == 8
    assert all(searched[m]["search_seconds"] > 0 for m in searched)
    assert (out / "dso" / "arch.json").is_file() and (out / "egs" / "best.json").is_file()
    assert (out / "compare.png").stat().st_size > 10_000
