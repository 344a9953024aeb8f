"""ONNX Runtime CPU runs the exported planner like PyTorch eager: within 1e-4 m on every trajectory output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusiondrive_ros.contract import INPUT_NAMES
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.runtime.export import export_onnx

TOLERANCE_M = 1e-4
SEEDS = (3, 4, 5, 6)


def _max_diffs(model, path) -> dict[str, float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = {"trajectory": 0.0, "modes": 0.0}
    for seed in SEEDS:
        inputs = model.example_inputs(1, seed=seed)
        with torch.inference_mode():
            ref = model(*inputs)
        got = session.run(list(diffs), {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
        for name, value in zip(diffs, got):
            assert value.shape == tuple(ref[name].shape)
            diffs[name] = max(diffs[name], float(np.abs(value - ref[name].numpy()).max()))
    return diffs


def _check(config_name: str, tmp_path) -> None:
    cfg = load_config(config_name)
    model = build_model(cfg, seed=0).eval()
    report = export_onnx(model, cfg, tmp_path / f"{config_name}.onnx", parity_tolerance=TOLERANCE_M)
    assert max(report.max_abs_diff.values()) <= TOLERANCE_M
    diffs = _max_diffs(model, report.path)
    assert all(d <= TOLERANCE_M for d in diffs.values()), diffs


def test_tiny_onnxruntime_matches_torch(tmp_path):
    _check("tiny", tmp_path)


@pytest.mark.slow
def test_navsim_onnxruntime_matches_torch(tmp_path):
    _check("navsim", tmp_path)
