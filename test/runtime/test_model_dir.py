"""Model directories: written by `diffusiondrive export --model-dir`, loaded by every backend through one path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from diffusiondrive_ros.cli import main
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.checkpoint import read_checkpoint
from diffusiondrive_ros.model.config import ModelConfig, config_from_dict
from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.model_dir import is_model_dir, load_model_dir, shipped_model_dir


def _raw_yaml_config(folder: Path) -> ModelConfig:
    """model.yaml as written (load_config would resolve its anchors entry to an absolute path)."""
    return config_from_dict(yaml.safe_load((folder / "model.yaml").read_text()))


def test_shipped_model_weights_carry_the_config_of_its_model_yaml() -> None:
    """Loading the bare .safetensors must drive like the directory: same deployment settings, same everything."""
    folder = shipped_model_dir("tiny")
    assert read_checkpoint(folder / "model.safetensors")[1] == _raw_yaml_config(folder)


def test_deployment_settings_need_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="use --model-dir"):
        main(["export", "--out", str(tmp_path / "x.onnx"), "--smoothing", "polynomial"])
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_export_model_dir_loads_in_torch_and_onnxruntime_with_the_same_plan(tmp_path: Path, tiny_config) -> None:
    from diffusiondrive_ros.model.checkpoint import save_checkpoint

    model = build_model(tiny_config, anchors=np.random.default_rng(0).normal(size=(20, 8, 2)).astype("f4"))
    save_checkpoint(model, tmp_path / "ckpt.safetensors")
    out = tmp_path / "model"
    assert main(["export", "--model", str(tmp_path / "ckpt.safetensors"), "--model-dir", str(out),
                 "--smoothing", "polynomial", "--noise-scale", "0.5"]) == 0
    assert is_model_dir(out)
    for name in ("model.yaml", "model.safetensors", "planner.onnx", "anchors.npy"):
        assert (out / name).is_file(), name
    cfg, onnx_file = load_model_dir(out, "onnxruntime")
    assert onnx_file.name == "planner.onnx"
    np.testing.assert_array_equal(np.load(out / "anchors.npy"), model.trajectory_head.plan_anchor.numpy())
    head = cfg.trajectory_head  # the deployment settings reach model.yaml and the weights' own config alike
    assert (head.trajectory_smoothing, head.sampling_noise_scale) == ("polynomial", 0.5)
    assert _raw_yaml_config(out) == read_checkpoint(out / "model.safetensors")[1]

    from diffusiondrive_ros.data.synthetic import synthetic_frame

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
