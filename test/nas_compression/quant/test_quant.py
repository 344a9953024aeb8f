"""Fake quant vs the deployed Q/DQ graph in ONNX Runtime CPU; deployed-size accounting; BN folding; calibration."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from nas_compression.quant.export import export_qdq_onnx, predicted_weight_bytes
from nas_compression.quant.fake import fake_quant_weight, fold_batchnorm, quantize_weight
from nas_compression.quant.onnx_qdq import count_qdq, deployed_weight_bytes
from nas_compression.space.genome import Genome, StageGene
from nas_compression.tasks.classify import ClassifyData, build_classifier, classify_template, quantize_classifier


def _genome(stage_bits=(8, 16, 8, 8), stem_bits=8, linear_bits=4) -> Genome:
    g = classify_template()
    stages = (
        StageGene("basic", 3, 1, 1.0, 1, "identity", 8),
        StageGene("mbconv", 5, 2, 1.0, 6, "identity", 8),
        StageGene("sepconv", 3, 1, 1.0, 1, "none", 8),
        StageGene("bottleneck", 3, 1, 0.5, 1, "identity", 8),
    )
    image = dataclasses.replace(g.image, stages=stages).with_bits(stem_bits, stage_bits)
    return dataclasses.replace(g, image=image, linear_bits=linear_bits)


def _data(n: int = 64, seed: int = 0) -> ClassifyData:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return ClassifyData(x, y, x, y)


def _trained_bn(model: torch.nn.Module) -> None:
    """Give BatchNorm non-trivial statistics so folding is really exercised."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(_data(32, seed=7).x_train)
    model.eval()


def _quantized(genome: Genome):
    model = build_classifier(genome, seed=0)
    _trained_bn(model)
    return quantize_classifier(model, genome, _data())


def test_fold_batchnorm_preserves_outputs():
    model = build_classifier(_genome(), seed=0)
    _trained_bn(model)
    x = _data(8).x_val
    with torch.no_grad():
        ref = model(x)
        assert fold_batchnorm(model) > 10
        got = model(x)
    assert torch.allclose(ref, got, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_weight_quantization_is_symmetric_per_channel():
    w = torch.randn(6, 4, 3, 3)
    q, s = quantize_weight(w, 8)
    assert q.dtype == torch.int8 and q.abs().max() == 127 and s.shape == (6,)
    assert torch.allclose(q.float() * s.view(-1, 1, 1, 1), fake_quant_weight(w, 8))
    q4, _ = quantize_weight(w, 4)
    assert q4.abs().max() == 7
    w.requires_grad_(True)
    fake_quant_weight(w, 8).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through estimator


@pytest.mark.parametrize(
    "policy",
    [
        dict(),
        dict(stage_bits=(16, 16, 16, 16), stem_bits=16, linear_bits=16),
        dict(stage_bits=(8, 8, 8, 8), linear_bits=8),
    ],
)
def test_qdq_onnx_matches_fake_quant(tmp_path, policy):
    genome = _genome(**policy)
    model = _quantized(genome)
    x = _data(4, seed=3).x_val
    graph = export_qdq_onnx(model, (x[:1],), tmp_path / "m.onnx", ["image"], ["logits"])
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(x[:1]).numpy()
    got = session.run(None, {"image": x[:1].numpy()})[0]
    assert np.abs(got - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    # Q/DQ nodes are in the saved graph, and every zero point is 0.
    counts = count_qdq(onnx.load(str(tmp_path / "m.onnx")))
    n_int8 = sum(b == 8 for b in (genome.image.stem_bits, *[s.bits for s in genome.image.stages], genome.linear_bits))
    assert (counts["QuantizeLinear"] > 0) == (n_int8 > 0)
    for init in graph.graph.initializer:
        if init.name.endswith("zero_point"):
            assert not np.any(numpy_helper.to_array(init))


def test_int4_linear_is_stored_packed(tmp_path):
    model = _quantized(_genome(linear_bits=4))
    graph = export_qdq_onnx(model, (_data(1).x_val,), tmp_path / "m.onnx", ["image"], ["logits"])
    int4 = [i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.INT4]
    assert {i.name for i in int4} >= {"classifier.weight_quantized"}
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 21


def test_deployed_size_accounting(tmp_path):
    sizes = {}
    for name, policy in {
        "int8": dict(stage_bits=(8,) * 4, linear_bits=8),
        "fp16": dict(stage_bits=(16,) * 4, stem_bits=16, linear_bits=16),
    }.items():
        model = _quantized(_genome(**policy))
        graph = export_qdq_onnx(model, (_data(1).x_val,), tmp_path / f"{name}.onnx", ["image"], ["logits"])
        actual, predicted = deployed_weight_bytes(graph), predicted_weight_bytes(model)
        assert abs(actual - predicted) <= 256, (name, actual, predicted)  # only the exporter's shape constants
        sizes[name] = actual
    float_params = sum(p.numel() for p in build_classifier(_genome(), seed=0).parameters())
    assert sizes["int8"] < sizes["fp16"] < float_params * 4
    assert sizes["int8"] < 0.6 * sizes["fp16"]


def test_calibration_sets_activation_scales():
    model = _quantized(_genome(stage_bits=(8,) * 4))
    scales = [float(m.act_scale) for m in model.modules() if getattr(m, "bits", None) == 8]
    assert scales and all(s > 0 and s != 1.0 for s in scales)
