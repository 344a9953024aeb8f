"""The torch backend: seeded random weights, checkpoints, guarded torch.compile, precision/device checks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusiondrive_ros.model.config import load_config
from diffusiondrive_ros.runtime.backends import BACKENDS, make_planner
from diffusiondrive_ros.runtime.backends.torch_backend import TorchPlanner, io_signature
from diffusiondrive_ros.runtime.standin import build_standin, example_inputs
from diffusiondrive_ros.runtime.types import PlannerInputs


def _inputs(config, seed: int = 0) -> tuple[PlannerInputs, np.ndarray]:
    camera, lidar, status, noise = (t.numpy() for t in example_inputs(config, seed=seed))
    return PlannerInputs(camera=camera, lidar=lidar, status=status), noise


def test_make_planner_rejects_unknown_backends(tiny_config) -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'tflite'.*torch.*onnxruntime.*tensorrt"):
        make_planner(tiny_config, "tflite")
    assert BACKENDS == ("torch", "onnxruntime", "tensorrt")


def test_injected_model_matches_a_direct_call(tiny_config) -> None:
    model = build_standin(tiny_config, seed=1)
    planner = make_planner(tiny_config, "torch", model=model)
    assert isinstance(planner, TorchPlanner) and planner.providers == ["torch:cpu:eager"]
    inputs, noise = _inputs(tiny_config, seed=2)
    got = planner.infer(inputs, noise)
    with torch.no_grad():
        want = model(*(torch.from_numpy(a) for a in (inputs.camera, inputs.lidar, inputs.status, noise)))
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value.numpy())


def test_random_weights_are_seeded(tiny_config) -> None:
    inputs, noise = _inputs(tiny_config)
    a = make_planner(tiny_config, "torch", seed=0).infer(inputs, noise)
    b = make_planner(tiny_config, "torch", seed=0).infer(inputs, noise)
    c = make_planner(tiny_config, "torch", seed=1).infer(inputs, noise)
    assert a["trajectory"].shape == (1, 8, 3) and a["modes"].shape == (1, 20, 8, 3)
    np.testing.assert_array_equal(a["modes"], b["modes"])
    assert not np.array_equal(a["modes"], c["modes"])


def test_checkpoint_round_trip_and_config_mismatch(tmp_path: Path, tiny_config) -> None:
    from diffusiondrive_ros.model import build_model
    from diffusiondrive_ros.model.checkpoint import save_checkpoint

    model = build_model(tiny_config, seed=4).eval()
    path = save_checkpoint(model, tmp_path / "tiny.safetensors")
    inputs, noise = _inputs(tiny_config, seed=3)
    loaded = make_planner(tiny_config, "torch", path).infer(inputs, noise)
    direct = make_planner(tiny_config, "torch", model=model).infer(inputs, noise)
    np.testing.assert_array_equal(loaded["modes"], direct["modes"])
    navsim = load_config("navsim")
    assert io_signature(navsim) != io_signature(tiny_config)
    with pytest.raises(ValueError, match="was trained for config 'tiny'"):
        make_planner(navsim, "torch", path)


def test_return_aux_adds_the_auxiliary_outputs(tiny_config) -> None:
    out = make_planner(tiny_config, "torch", seed=0, return_aux=True).infer(*_inputs(tiny_config))
    assert {"agent_states", "agent_labels", "bev_semantic_map"} <= set(out)
    assert all(v.dtype == np.float32 for v in out.values())


def test_failed_compile_falls_back_to_eager_with_a_log_line(caplog, tiny_config) -> None:
    model = build_standin(tiny_config, seed=5)
    with caplog.at_level(logging.WARNING):
        planner = make_planner(tiny_config, "torch", model=model, compile=True, compile_mode="no-such-mode")
    assert not planner.compiled and planner.providers == ["torch:cpu:eager"]
    assert "falling back to eager" in caplog.text
    eager = make_planner(tiny_config, "torch", model=model)
    inputs, noise = _inputs(tiny_config)
    np.testing.assert_array_equal(planner.infer(inputs, noise)["modes"], eager.infer(inputs, noise)["modes"])


def test_options_are_validated(tiny_config) -> None:
    model = build_standin(tiny_config)
    with pytest.raises(ValueError, match="precision"):
        make_planner(tiny_config, "torch", model=model, precision="int4")
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        make_planner(tiny_config, "torch", model=model, precision="fp16")
    with pytest.raises(ValueError, match="num_threads"):
        make_planner(tiny_config, "torch", model=model, num_threads=0)
    with pytest.raises(ValueError, match="either model or model_path"):
        make_planner(tiny_config, "torch", "x.safetensors", model=model)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            make_planner(tiny_config, "torch", model=model, device="cuda")
    with pytest.raises(ValueError, match="device"):
        make_planner(tiny_config, "torch", model=model, device="tpu")


def test_bf16_autocast_on_cpu_stays_close(tiny_config) -> None:
    model = build_standin(tiny_config, seed=6)
    inputs, noise = _inputs(tiny_config)
    fp32 = make_planner(tiny_config, "torch", model=model).infer(inputs, noise)
    bf16_planner = make_planner(tiny_config, "torch", model=model, precision="bf16")
    bf16 = bf16_planner.infer(inputs, noise)
    assert bf16_planner.providers == ["torch:cpu:eager:bf16"]
    assert bf16["modes"].dtype == np.float32
    np.testing.assert_allclose(bf16["modes"], fp32["modes"], atol=0.1)


def test_input_shapes_are_checked(tiny_config) -> None:
    planner = make_planner(tiny_config, "torch", model=build_standin(tiny_config))
    inputs, noise = _inputs(tiny_config)
    with pytest.raises(ValueError, match="'lidar' has shape"):
        planner.infer(PlannerInputs(inputs.camera, inputs.lidar[:, :, :64], inputs.status), noise)


@pytest.mark.slow
def test_torch_compile_matches_eager_when_it_works(tiny_config) -> None:
    """Inductor needs a C++ compiler; where it fails the planner must still fall back and run."""
    model = build_standin(tiny_config, seed=7)
    compiled = make_planner(tiny_config, "torch", model=model, compile=True)
    eager = make_planner(tiny_config, "torch", model=model)
    inputs, noise = _inputs(tiny_config)
    np.testing.assert_allclose(
        compiled.infer(inputs, noise)["modes"], eager.infer(inputs, noise)["modes"], atol=1e-4, rtol=1e-4
    )
    assert compiled.providers[0].endswith("compiled" if compiled.compiled else "eager")
