"""ONNX Runtime CPU runs the exported planner like PyTorch eager: within 1e-4 m on every trajectory output."""

from __future__ import annotations

import copy
import dataclasses

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


# -- export rewrites ------------------------------------------------------------------------------------------------
def _attention_with_weights(d: int, seed: int):
    from diffusiondrive_ros.model.trajectory_head import GridSampleBEVAttention

    torch.manual_seed(seed)
    attention = GridSampleBEVAttention(d, 8, bev_range_m=32.0, dropout=0.0).eval()
    with torch.no_grad():  # the model zero-initialises these: random ones make the point weighting matter
        attention.attention_weights.weight.normal_(0.0, 0.5)
        attention.value_proj[0].bias.normal_(0.0, 0.5)
    return attention


def test_sampled_values_equal_grid_sample_of_the_dense_map():
    from diffusiondrive_ros.runtime.export_rewrites import SampledValueAttention

    size, d, batch, modes = 12, 16, 2, 5
    dense = _attention_with_weights(d, seed=0)
    sampled = SampledValueAttention(dense, size).eval()
    g = torch.Generator().manual_seed(1)
    bev = torch.randn(batch, d, size, size, generator=g)
    queries = torch.randn(batch, modes, d, generator=g)
    # metric points across and well beyond the +-32 m map (zero padding), plus exact cell centres and edges
    points = (torch.rand(batch, modes, 8, 2, generator=g) - 0.5) * 90.0
    points[0, 0, :4] = torch.tensor([[0.0, 0.0], [-32.0, -32.0], [31.999, 31.999], [32.0 / 12, -32.0 / 12]])
    with torch.inference_mode():
        want = dense(queries, points, dense.value_proj(bev))
        got = sampled(queries, points, sampled.value_proj(bev))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sampled_values_need_the_3x3_relu_value_conv():
    from diffusiondrive_ros.runtime.export_rewrites import SampledValueAttention

    attention = _attention_with_weights(8, seed=0)
    attention.value_proj[0] = torch.nn.Conv2d(8, 8, 1)
    with pytest.raises(ValueError, match="3x3"):
        SampledValueAttention(attention, 12)


def test_rewrite_choice_follows_the_cost(tiny_config):
    from diffusiondrive_ros.runtime.export_rewrites import rewrite_for_export, should_sample_values

    assert should_sample_values(load_config("navsim"))  # 2 steps x 20 x 8 x 4 corners < 64 x 64 cells
    assert not should_sample_values(tiny_config)  # ... > 24 x 24
    model = build_model(tiny_config, seed=0).eval()
    assert rewrite_for_export(model, "auto") == []
    with pytest.raises(ValueError, match="values"):
        rewrite_for_export(model, "sparse")
    assert rewrite_for_export(model, "sampled") == ["sampled_values[0]", "sampled_values[1]"]


def test_auto_rewrite_leaves_non_plain_value_convs_alone(tiny_config):
    """A subclassed conv (e.g. nas_compression's fake-quant QuantConv2d) keeps its Conv node for Q/DQ placement."""
    from diffusiondrive_ros.runtime.export_rewrites import rewrite_for_export

    class TaggedConv(torch.nn.Conv2d):
        pass

    big = dataclasses.replace(tiny_config.backbone, bev_size=48)  # big enough for "auto" to sample
    cfg = tiny_config.replace(backbone=big)
    model = build_model(cfg, seed=0).eval()
    assert rewrite_for_export(copy.deepcopy(model), "auto") == ["sampled_values[0]", "sampled_values[1]"]
    attention = model.trajectory_head.diff_decoder.layers[0].cross_bev_attention
    plain = attention.value_proj[0]
    attention.value_proj[0] = TaggedConv(plain.in_channels, plain.out_channels, 3, padding=1)
    assert rewrite_for_export(model, "auto") == []


@pytest.mark.slow
def test_tiny_sampled_export_matches_torch(tmp_path, tiny_config):
    """The rewritten graph against the unmodified PyTorch model (tiny forced to the sampled form)."""
    cfg = tiny_config
    model = build_model(cfg, seed=0).eval()
    with torch.no_grad():
        for layer in model.trajectory_head.diff_decoder.layers:
            layer.cross_bev_attention.attention_weights.weight.normal_(0.0, 0.5)
    report = export_onnx(model, cfg, tmp_path / "tiny.onnx", values="sampled", parity_tolerance=TOLERANCE_M)
    assert report.rewrites == ["sampled_values[0]", "sampled_values[1]"]
    diffs = _max_diffs(model, report.path)
    assert all(d <= TOLERANCE_M for d in diffs.values()), diffs


@pytest.mark.slow
def test_dynamic_batch_export_runs_other_batch_sizes(tmp_path, tiny_config):
    """--dynamic-batch really yields a batch axis (a batch-1 trace example used to pin it to 1), sampled form too."""
    import onnxruntime as ort

    cfg = tiny_config
    model = build_model(cfg, seed=0).eval()
    report = export_onnx(model, cfg, tmp_path / "tiny.onnx", values="sampled", dynamic_batch=True)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    inputs = model.example_inputs(3, seed=7)
    with torch.inference_mode():
        ref = model(*inputs)
    got = session.run(["trajectory", "modes"], {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    for name, value in zip(("trajectory", "modes"), got):
        assert value.shape == tuple(ref[name].shape)
        assert float(np.abs(value - ref[name].numpy()).max()) <= TOLERANCE_M
