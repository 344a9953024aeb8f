"""A small stand-in network with the planner's exact I/O contract, for testing backends without the full model.

It reads every input (so a wrong binding changes the result), uses only ONNX/TensorRT-friendly ops and exports in
about a second, which lets the backend, cache and benchmark code be exercised where the real model is too slow or
not built yet. Its outputs mean nothing.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from ..contract import INPUT_NAMES, NUM_POSES, OUTPUT_NAMES, POSE_DIM, STATUS_DIM
from ..model.config import ModelConfig


class StandInPlanner(nn.Module):
    """forward(camera, lidar, status, noise) -> {trajectory (B,8,3), modes (B,M,8,3), mode_scores (B,M)}."""

    def __init__(self, config: ModelConfig, hidden: int = 32) -> None:
        super().__init__()
        self.num_modes = config.trajectory_head.num_anchors
        self.camera_shape = (3, config.camera.height, config.camera.width)
        self.lidar_shape = (1, config.lidar.size, config.lidar.size)
        self.camera_conv = nn.Conv2d(3, hidden, kernel_size=5, stride=4, padding=2)
        self.lidar_conv = nn.Conv2d(1, hidden, kernel_size=5, stride=4, padding=2)
        self.status_fc = nn.Linear(STATUS_DIM, hidden)
        self.noise_fc = nn.Linear(NUM_POSES * 2, hidden)
        self.mode_fc = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, NUM_POSES * POSE_DIM))
        self.score_fc = nn.Linear(2 * hidden, 1)

    def forward(
        self,
        camera: torch.Tensor,
        lidar: torch.Tensor,
        status: torch.Tensor,
        noise: torch.Tensor,
        return_aux: bool = False,
    ) -> dict[str, torch.Tensor]:
        batch = camera.shape[0]
        cam = torch.relu(self.camera_conv(camera)).mean(dim=(2, 3))
        lid = torch.relu(self.lidar_conv(lidar)).mean(dim=(2, 3))
        context = cam + lid + self.status_fc(status)  # (B, H)
        per_mode = self.noise_fc(noise.reshape(batch, self.num_modes, NUM_POSES * 2))  # (B, M, H)
        joint = torch.cat([per_mode, context.unsqueeze(1).expand_as(per_mode)], dim=-1)
        modes = self.mode_fc(joint).reshape(batch, self.num_modes, NUM_POSES, POSE_DIM)
        scores = torch.sigmoid(self.score_fc(joint).squeeze(-1))
        best = scores.argmax(dim=1)
        index = best.reshape(batch, 1, 1, 1).expand(batch, 1, NUM_POSES, POSE_DIM)
        trajectory = torch.gather(modes, 1, index).squeeze(1)
        return {"trajectory": trajectory, "modes": modes, "mode_scores": scores}


def build_standin(config: ModelConfig, seed: int = 0) -> StandInPlanner:
    """A stand-in in eval mode with weights drawn from ``seed``."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = StandInPlanner(config).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def example_inputs(config: ModelConfig, batch_size: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded (camera, lidar, status, noise) tensors of the config's shapes, on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    s = config.lidar.size
    camera = torch.rand(batch_size, 3, config.camera.height, config.camera.width, generator=gen)
    lidar = torch.rand(batch_size, 1, s, s, generator=gen)
    status = torch.randn(batch_size, STATUS_DIM, generator=gen)
    noise = torch.randn(batch_size, config.trajectory_head.num_anchors, NUM_POSES, 2, generator=gen)
    return camera, lidar, status, noise


class _TupleOutputs(nn.Module):
    """Wraps a dict-returning planner so that torch.onnx.export sees a tuple in ``OUTPUT_NAMES`` order."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, camera, lidar, status, noise):  # noqa: ANN001 - export signature
        out = self.model(camera, lidar, status, noise)
        return tuple(out[name] for name in OUTPUT_NAMES)


def export_standin_onnx(
    model: nn.Module, config: ModelConfig, path: str | os.PathLike, opset: int = 17, dynamic_batch: bool = False
) -> str:
    """Export a planner-like module with the contract's tensor names (TorchScript exporter: fast, no onnxscript)."""
    args = example_inputs(config)
    dynamic_axes = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter is deprecated
        _export_torchscript(model, args, path, opset, dynamic_axes)
    return str(path)


def _export_torchscript(model: nn.Module, args: tuple, path: str | os.PathLike, opset: int, dynamic_axes) -> None:
    torch.onnx.export(
        _TupleOutputs(model).eval(),
        args,
        str(path),
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamo=False,
        dynamic_axes=dynamic_axes,
    )


def export_planner_onnx(model: nn.Module, config: ModelConfig, path: str | os.PathLike, opset: int = 17) -> str:
    """Export any planner network for the ONNX backends.

    The stand-in goes through the TorchScript exporter (about a second) at ``opset``; the real model through
    ``runtime.export.export_onnx`` at the opset it supports (18), with its parity check.
    """
    if isinstance(model, StandInPlanner):
        return export_standin_onnx(model, config, path, opset=opset)
    from .export import export_onnx

    export_onnx(model, config, str(path))
    return str(path)
