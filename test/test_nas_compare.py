"""``nas-compress compare``: all four methods on digits at a tiny budget, one table, one plot, deployable ONNX."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
import torch

from nas_compression.cli import main

torch.set_num_threads(1)


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
        d = r["deploy"]
        assert d["deployed_bytes"] > 0 and d["latency_ms"] > 0 and d["params"] > 0 and r["search_seconds"] > 0
        sess = ort.InferenceSession(d["onnx_path"], providers=["CPUExecutionProvider"])
        assert sess.run(None, {"image": torch.rand(1, 1, 8, 8).numpy()})[0].shape == (1, 10)
    assert (out / "compare.png").stat().st_size > 10_000


def test_compare_refuses_bad_settings():
    from nas_compression.search.compare import CompareConfig

    with pytest.raises(ValueError):
        CompareConfig(budget=2)
    with pytest.raises(ValueError):
        CompareConfig(methods=("darts",))
