"""The onnxruntime backend on the CPU: parity with torch, provider reporting, session options, input checks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusiondrive_ros.model.config import load_config
from diffusiondrive_ros.runtime.backends import make_planner
from diffusiondrive_ros.runtime.backends.io import expected_input_shapes
from diffusiondrive_ros.runtime.backends.ort_backend import (
    CPU_EP,
    CUDA_EP,
    SPIN_CONFIG_KEY,
    TRT_EP,
    OnnxRuntimePlanner,
    cuda_provider_options,
    resolve_providers,
    tensorrt_provider_options,
)
from diffusiondrive_ros.runtime.standin import build_standin, example_inputs, export_standin_onnx
from diffusiondrive_ros.runtime.types import PlannerInputs, PlanResult, SensorFrame


@pytest.fixture(scope="module")
def standin(tiny_config):
    return build_standin(tiny_config, seed=3)


@pytest.fixture(scope="module")
def onnx_path(standin, tmp_path_factory, tiny_config) -> Path:
    return Path(export_standin_onnx(standin, tiny_config, tmp_path_factory.mktemp("onnx") / "standin.onnx"))


def _inputs(config, seed: int = 0) -> tuple[PlannerInputs, np.ndarray]:
    camera, lidar, status, noise = (t.numpy() for t in example_inputs(config, seed=seed))
    return PlannerInputs(camera=camera, lidar=lidar, status=status), noise


def _torch_reference(model, inputs: PlannerInputs, noise: np.ndarray) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        out = model(*(torch.from_numpy(a) for a in (inputs.camera, inputs.lidar, inputs.status, noise)))
    return {k: v.numpy() for k, v in out.items()}


def test_matches_torch_and_reports_real_providers(standin, onnx_path: Path, tiny_config) -> None:
    planner = make_planner(tiny_config, "onnxruntime", onnx_path)
    assert isinstance(planner, OnnxRuntimePlanner)
    assert planner.providers == [CPU_EP]  # the default list is filtered to what this build offers
    inputs, noise = _inputs(tiny_config, seed=1)
    got = planner.infer(inputs, noise)
    want = _torch_reference(standin, inputs, noise)
    assert set(got) == {"trajectory", "modes", "mode_scores"}
    for name in want:
        assert got[name].shape == want[name].shape and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=1e-5)


def test_io_binding_gives_the_same_outputs(onnx_path: Path, tiny_config) -> None:
    inputs, noise = _inputs(tiny_config, seed=2)
    plain = make_planner(tiny_config, "onnxruntime", onnx_path, io_binding=False)
    bound = make_planner(tiny_config, "onnxruntime", onnx_path, io_binding=True)
    assert not plain.use_io_binding and bound.use_io_binding
    a, b = plain.infer(inputs, noise), bound.infer(inputs, noise)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_unavailable_providers_are_dropped_with_a_log_line(onnx_path: Path, caplog, tiny_config) -> None:
    with caplog.at_level(logging.WARNING):
        planner = make_planner(tiny_config, "onnxruntime", onnx_path, providers=[CUDA_EP, CPU_EP])
    assert planner.providers == [CPU_EP]
    assert "CUDAExecutionProvider" in caplog.text


def test_resolve_providers_pure() -> None:
    assert resolve_providers(None, [CPU_EP]) == [CPU_EP]
    assert resolve_providers([CUDA_EP, (CPU_EP, {})], [CUDA_EP, CPU_EP]) == [CUDA_EP, (CPU_EP, {})]
    with pytest.raises(ValueError, match="available"):
        resolve_providers([TRT_EP], [CPU_EP])
    with pytest.raises(ValueError, match="empty"):
        resolve_providers([], [CPU_EP])


def test_provider_options() -> None:
    trt = tensorrt_provider_options(device_id=1, fp16=True, engine_cache_dir=None)
    assert trt == {"device_id": "1", "trt_fp16_enable": "True"}
    cuda = cuda_provider_options(exhaustive_conv_search=False)
    assert cuda["cudnn_conv_algo_search"] == "HEURISTIC" and cuda["device_id"] == "0"


def test_tensorrt_options_create_the_cache_folder(tmp_path: Path) -> None:
    opts = tensorrt_provider_options(engine_cache_dir=tmp_path / "trt", workspace_bytes=1 << 30)
    assert opts["trt_engine_cache_enable"] == "True" and Path(opts["trt_engine_cache_path"]).is_dir()
    assert opts["trt_timing_cache_enable"] == "True" and opts["trt_max_workspace_size"] == str(1 << 30)


def test_optimized_model_cache_is_written_then_reused(onnx_path: Path, tmp_path: Path, tiny_config) -> None:
    inputs, noise = _inputs(tiny_config, seed=4)
    first = make_planner(tiny_config, "onnxruntime", onnx_path, optimized_model_dir=tmp_path)
    assert first.optimized_model_path is not None and first.optimized_model_path.is_file()
    second = make_planner(tiny_config, "onnxruntime", onnx_path, optimized_model_dir=tmp_path)
    assert second.optimized_model_path == first.optimized_model_path
    a, b = first.infer(inputs, noise), second.infer(inputs, noise)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-6)


def test_worker_threads_do_not_spin_unless_asked(onnx_path: Path, tiny_config) -> None:
    def spinning(planner) -> str:
        return planner.session.get_session_options().get_session_config_entry(SPIN_CONFIG_KEY)

    quiet = make_planner(tiny_config, "onnxruntime", onnx_path)
    busy = make_planner(tiny_config, "onnxruntime", onnx_path, allow_spinning=True)
    assert (spinning(quiet), quiet.allow_spinning) == ("0", False)
    assert (spinning(busy), busy.allow_spinning) == ("1", True)
    inputs, noise = _inputs(tiny_config, seed=5)
    a, b = quiet.infer(inputs, noise), busy.infer(inputs, noise)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_session_options_are_validated(onnx_path: Path, tmp_path: Path, tiny_config) -> None:
    with pytest.raises(ValueError, match="graph_optimization"):
        make_planner(tiny_config, "onnxruntime", onnx_path, graph_optimization="max")
    with pytest.raises(ValueError, match="io_binding"):
        make_planner(tiny_config, "onnxruntime", onnx_path, io_binding="sometimes")
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        make_planner(tiny_config, "onnxruntime", tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="needs model_path"):
        make_planner(tiny_config, "onnxruntime")


def test_graph_for_another_config_is_rejected(onnx_path: Path) -> None:
    with pytest.raises(ValueError, match="right config"):
        make_planner(load_config("navsim"), "onnxruntime", onnx_path)


def test_graph_with_other_tensor_names_is_rejected(standin, tmp_path: Path, tiny_config) -> None:
    path = tmp_path / "renamed.onnx"
    torch.onnx.export(
        standin, example_inputs(tiny_config), str(path), input_names=["a", "b", "c", "d"], opset_version=17,
        dynamo=False,
    )
    with pytest.raises(ValueError, match="do not match the contract"):
        make_planner(tiny_config, "onnxruntime", path)


def test_bad_inputs_raise_clear_errors(onnx_path: Path, tiny_config) -> None:
    planner = make_planner(tiny_config, "onnxruntime", onnx_path)
    inputs, noise = _inputs(tiny_config)
    with pytest.raises(ValueError, match="'noise' has shape"):
        planner.infer(inputs, noise[:, :5])
    bad = PlannerInputs(camera=inputs.camera[..., :100], lidar=inputs.lidar, status=inputs.status)
    with pytest.raises(ValueError, match="'camera' has shape"):
        planner.infer(bad, noise)
    nan_status = inputs.status.copy()
    nan_status[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        planner.infer(PlannerInputs(inputs.camera, inputs.lidar, nan_status), noise)


def test_float64_inputs_are_cast(onnx_path: Path, tiny_config) -> None:
    planner = make_planner(tiny_config, "onnxruntime", onnx_path)
    inputs, noise = _inputs(tiny_config)
    wide = PlannerInputs(*(a.astype(np.float64) for a in (inputs.camera, inputs.lidar, inputs.status)))
    np.testing.assert_allclose(
        planner.infer(wide, noise.astype(np.float64))["trajectory"], planner.infer(inputs, noise)["trajectory"]
    )


def test_plan_runs_the_whole_frame_and_is_seeded(onnx_path: Path, tiny_config) -> None:
    rng = np.random.default_rng(0)
    h, w = tiny_config.camera.source_height, tiny_config.camera.source_width
    frame = SensorFrame(
        cameras=tuple(rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3)),
        lidar_points=rng.normal(0, 10, (2000, 4)).astype(np.float32),
        velocity=(5.0, 0.0),
        command="straight",
        stamp=12.5,
    )
    results = [make_planner(tiny_config, "onnxruntime", onnx_path, seed=7).plan(frame) for _ in range(2)]
    other = make_planner(tiny_config, "onnxruntime", onnx_path, seed=8).plan(frame)
    first = results[0]
    assert isinstance(first, PlanResult) and first.stamp == 12.5
    assert first.trajectory.shape == (8, 3) and first.modes.shape == (20, 8, 3) and first.mode_scores.shape == (20,)
    assert set(first.latency_ms) == {"preprocess", "infer", "postprocess", "total"}
    np.testing.assert_array_equal(results[0].modes, results[1].modes)  # same seed, same start noise
    assert not np.array_equal(first.modes, other.modes)


def test_expected_shapes_follow_the_config() -> None:
    shapes = expected_input_shapes(load_config("navsim"), batch_size=2)
    assert shapes["camera"] == (2, 3, 256, 1024) and shapes["lidar"] == (2, 1, 256, 256)
    assert shapes["status"] == (2, 8) and shapes["noise"] == (2, 20, 8, 2)


@pytest.mark.slow
def test_real_tiny_model_onnxruntime_matches_torch(tmp_path: Path, tiny_config) -> None:
    """The real network (exported like the bench does) through onnxruntime vs torch eager."""
    from diffusiondrive_ros.model import build_model
    from diffusiondrive_ros.runtime.standin import export_planner_onnx

    model = build_model(tiny_config, seed=0).eval()
    path = export_planner_onnx(model, tiny_config, tmp_path / "tiny.onnx")
    ort_planner = make_planner(tiny_config, "onnxruntime", path)
    torch_planner = make_planner(tiny_config, "torch", model=model)
    inputs, noise = _inputs(tiny_config, seed=5)
    a, b = ort_planner.infer(inputs, noise), torch_planner.infer(inputs, noise)
    np.testing.assert_allclose(a["trajectory"], b["trajectory"], atol=1e-3)
    np.testing.assert_allclose(a["mode_scores"], b["mode_scores"], atol=1e-4)
