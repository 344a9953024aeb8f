"""Model directories: written by `diffusiondrive export --model-dir`, loaded by every backend through one path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.model_dir import is_model_dir, load_model_dir


@pytest.mark.slow
def test_export_model_dir_loads_in_torch_and_onnxruntime_with_the_same_plan(tmp_path: Path) -> None:
    from diffusiondrive_ros.model.checkpoint import save_checkpoint

    model = build_model(load_config("tiny"), anchors=np.random.default_rng(0).normal(size=(20, 8, 2)).astype("f4"))
    save_checkpoint(model, tmp_path / "ckpt.safetensors")
    out = tmp_path / "model"
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt.safetensors"), "--model-dir", str(out)]) == 0
    assert is_model_dir(out)
    for name in ("model.yaml", "model.safetensors", "planner.onnx", "anchors.npy"):
        assert (out / name).is_file(), name
    cfg, onnx_file = load_model_dir(out, "onnxruntime")
    assert onnx_file.name == "planner.onnx"
    np.testing.assert_array_equal(np.load(out / "anchors.npy"), model.trajectory_head.plan_anchor.numpy())

    from diffusiondrive_ros.commands.plan import synthetic_frame

    frame = synthetic_frame(cfg, np.random.default_rng(1))
    # A wrong config passed in is replaced by the directory's own.
    plans = [make_planner(load_config("navsim"), b, str(out), seed=3).plan(frame) for b in ("torch", "onnxruntime")]
    np.testing.assert_allclose(plans[0].modes, plans[1].modes, atol=1e-4)


def test_a_folder_without_its_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        load_model_dir(tmp_path, "onnxruntime")
    (tmp_path / "model.yaml").write_text("name: tiny\n")
    with pytest.raises(FileNotFoundError, match="no planner.onnx"):
        load_model_dir(tmp_path, "onnxruntime")
