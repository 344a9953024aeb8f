"""The TensorRT backend: clear failure without TensorRT; builder + cache + runner where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.backends.trt_engine import BuildOptions, TensorRTUnavailableError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed: the missing-TensorRT path cannot be exercised")
def test_missing_tensorrt_fails_with_an_install_hint(tmp_path: Path, tiny_config) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not used")
    with pytest.raises(TensorRTUnavailableError, match="needs NVIDIA TensorRT") as info:
        make_planner(tiny_config, "tensorrt", onnx)
    assert isinstance(info.value, ImportError)


def test_tensorrt_backend_needs_a_model_file(tiny_config) -> None:
    with pytest.raises(ValueError, match="needs model_path"):
        make_planner(tiny_config, "tensorrt")


def test_build_options_are_validated() -> None:
    assert BuildOptions().precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        BuildOptions(precision="int3")
    with pytest.raises(ValueError, match="max_batch"):
        BuildOptions(max_batch=0)
    with pytest.raises(ValueError, match="optimization_level"):
        BuildOptions(optimization_level=9)
    assert BuildOptions(workspace_bytes=1).as_key_options()["workspace_bytes"] == 1


@pytest.mark.gpu
def test_engine_is_built_cached_and_matches_torch(tmp_path: Path, tiny_config) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA's index / container only)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from diffusiondrive_ros.runtime.standin import build_standin, example_inputs, export_standin_onnx
    from diffusiondrive_ros.runtime.types import PlannerInputs

    model = build_standin(tiny_config, seed=0)
    onnx = Path(export_standin_onnx(model, tiny_config, tmp_path / "standin.onnx"))
    first = make_planner(tiny_config, "tensorrt", onnx, cache_dir=tmp_path / "engines")
    assert first.cache_info is not None and first.cache_info.built
    second = make_planner(tiny_config, "tensorrt", onnx, cache_dir=tmp_path / "engines", cuda_graph=True)
    assert second.cache_info is not None and not second.cache_info.built
    camera, lidar, status, noise = (t.numpy() for t in example_inputs(tiny_config, seed=1))
    inputs = PlannerInputs(camera, lidar, status)
    with torch.no_grad():
        want = model(*(torch.from_numpy(a) for a in (camera, lidar, status, noise)))["modes"].numpy()
    for planner in (first, second):
        np.testing.assert_allclose(planner.infer(inputs, noise)["modes"], want, atol=1e-2)
