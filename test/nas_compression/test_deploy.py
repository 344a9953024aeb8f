"""Deploy path: a genome inside the tiny planner -> Q/DQ planner ONNX in a model dir the runtime backend loads."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from diffusiondrive_ros.model import load_config
from diffusiondrive_ros.model.checkpoint import read_checkpoint
from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.types import PlannerInputs
from nas_compression.deploy import deploy_genome
from nas_compression.quant.onnx_qdq import count_qdq
from nas_compression.space.genome import Genome
from nas_compression.space.planner import genome_of_config


@pytest.mark.slow
def test_deploy_writes_a_model_dir_the_onnxruntime_backend_runs(tmp_path):
    base = load_config("tiny")
    g = genome_of_config(base, 8)
    g = dataclasses.replace(g, image=g.image.with_bits(8, (8, 16, 8, 8)), linear_bits=4)
    report = deploy_genome(g, "tiny", tmp_path / "model")
    model_dir = tmp_path / "model"
    for name in ("planner.onnx", "model.safetensors", "model.yaml", "genome.json", "README.md"):
        assert (model_dir / name).is_file(), name
    assert Genome.load(model_dir / "genome.json") == g
    _, ckpt_cfg, extra = read_checkpoint(model_dir / "model.safetensors")
    assert ckpt_cfg.backbone.image_encoder == g.image.to_spec()
    counts = count_qdq(onnx.load(str(model_dir / "planner.onnx")))
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > counts["QuantizeLinear"]
    assert max(report.parity_max_abs.values()) < 0.05
    assert report.deployed_bytes < report.float_onnx_bytes * 0.75

    cfg = load_config(model_dir / "model.yaml")
    planner = make_planner(cfg, "onnxruntime", model_dir / "planner.onnx", providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = PlannerInputs(
        camera=rng.random((1, 3, cfg.camera.height, cfg.camera.width), dtype=np.float32),
        lidar=rng.random((1, 1, cfg.lidar.size, cfg.lidar.size), dtype=np.float32),
        status=rng.standard_normal((1, 8), dtype=np.float32),
    )
    out = planner.infer(inputs, planner.sample_noise(1))
    assert out["trajectory"].shape == (1, 8, 3) and np.isfinite(out["trajectory"]).all()
