"""Model configuration: dataclasses loaded from YAML files under ``config/models/``.

Every shape and constant of the network and of its input tensors is defined here once; preprocessing, export,
the simulator and the ROS node read them from a :class:`ModelConfig`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..resources import resource_candidates
from .spec import EncoderSpec, resnet_spec


@dataclass(frozen=True)
class CameraConfig:
    """Three cameras (left-front, front, right-front) cropped, stitched left|front|right and resized."""

    height: int = 256  # model input size
    width: int = 1024
    source_height: int = 1080  # each raw camera image
    source_width: int = 1920
    crop_rows: int = 28  # rows removed at the top and at the bottom of every camera
    side_crop_cols: int = 416  # columns removed on both sides of the two side cameras


@dataclass(frozen=True)
class LidarConfig:
    """2-D point histogram over x (rows, forward) and y (columns) in [-range, range] metres."""

    range_m: float = 32.0
    pixels_per_meter: float = 4.0
    min_z: float = 0.2  # points kept with min_z < z < max_z (ego frame, metres)
    max_z: float = 100.0
    max_points_per_pixel: float = 5.0  # counts are clipped at this value and divided by it

    @property
    def size(self) -> int:
        return int(round(2 * self.range_m * self.pixels_per_meter))


@dataclass(frozen=True)
class FusionConfig:
    """TransFuser GPT fusion after each encoder stage, over fixed pooled token grids."""

    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    image_tokens: tuple[int, int] = (8, 32)
    lidar_tokens: tuple[int, int] = (8, 8)


@dataclass(frozen=True)
class BackboneConfig:
    image_encoder: EncoderSpec = field(default_factory=lambda: resnet_spec("resnet34", 3))
    lidar_encoder: EncoderSpec = field(default_factory=lambda: resnet_spec("resnet34", 1))
    fusion: FusionConfig = field(default_factory=FusionConfig)
    bev_channels: int = 64  # channels of the upscaled BEV map
    bev_size: int = 64  # the upscaled BEV map is bev_size x bev_size over [-range, range]


@dataclass(frozen=True)
class NeckConfig:
    d_model: int = 256
    n_heads: int = 8
    ffn_dim: int = 1024
    n_layers: int = 3
    dropout: float = 0.0


@dataclass(frozen=True)
class TrajectoryHeadConfig:
    num_anchors: int = 20
    cascade_layers: int = 2
    n_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    denoising_steps: int = 2
    anchors: str | None = None  # .npy file (num_anchors, 8, 2); None: a built-in fan of anchors
    # Noise schedule (DDPM scaled_linear betas) and truncation.
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    train_truncation: int = 50  # training noises anchors with t ~ U{0 .. train_truncation - 1}
    timestep_span: int = 20  # inference timesteps: round(arange(steps) * span / steps), descending
    start_timestep: int = 8  # noise level of the inference start sample
    # Std of the start noise epsilon the Planner samples, relative to the schedule's: 1 is the paper's sampling; a
    # smaller value trades mode diversity for smoother waypoints when the decoder does not cancel the noise fully.
    sampling_noise_scale: float = 1.0
    # Post-processing of the best plan (runtime/smoothing.py): "none" or "polynomial" (quartic fit from the ego).
    trajectory_smoothing: str = "none"
    # Normalisation of (x, y) into [-1, 1]: x_n = 2 (x - lo) / span - 1.
    norm_x: tuple[float, float] = (-1.2, 56.9)
    norm_y: tuple[float, float] = (-20.0, 46.0)
    # Upstream quirks, reproduced by default for checkpoint compatibility (docs/model.md).
    start_at_first_timestep: bool = False  # True: start noise level = first embedded timestep (upstream: 8 vs 10)
    chain_layer_features: bool = False  # True: layer k+1 refines layer k's features (upstream: re-uses layer 1's)
    ffn_residual: bool = False  # True: residual around the decoder FFN (upstream: none)


@dataclass(frozen=True)
class AuxHeadsConfig:
    agent_head: bool = True
    bev_semantic_head: bool = True
    bev_semantic_size: tuple[int, int] = (128, 256)


@dataclass(frozen=True)
class LossConfig:
    trajectory_weight: float = 12.0
    cls_weight: float = 10.0
    reg_weight: float = 8.0
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    agent_class_weight: float = 10.0
    agent_box_weight: float = 1.0
    bev_semantic_weight: float = 14.0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "navsim"
    camera: CameraConfig = field(default_factory=CameraConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    trajectory_head: TrajectoryHeadConfig = field(default_factory=TrajectoryHeadConfig)
    aux_heads: AuxHeadsConfig = field(default_factory=AuxHeadsConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def replace(self, **sections: Any) -> ModelConfig:
        return dataclasses.replace(self, **sections)

    def with_sampling(self, noise_scale: float | None = None, smoothing: str | None = None) -> ModelConfig:
        """This config with the deployment settings trajectory_head.sampling_noise_scale / trajectory_smoothing
        replaced where given (None keeps the current value)."""
        changes: dict[str, Any] = {}
        if noise_scale is not None:
            changes["sampling_noise_scale"] = float(noise_scale)
        if smoothing is not None:
            changes["trajectory_smoothing"] = smoothing
        if not changes:
            return self
        return self.replace(trajectory_head=dataclasses.replace(self.trajectory_head, **changes))

    def with_source_camera_size(self, size: tuple[int, int] | None) -> ModelConfig:
        """This config whose source camera images are ``size`` = (width, height) (None: unchanged)."""
        if size is None:
            return self
        return self.replace(camera=dataclasses.replace(self.camera, source_width=size[0], source_height=size[1]))


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _build(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    """Build a (nested) config dataclass from a dict, rejecting unknown keys with their location."""
    data = dict(data or {})
    if cls is EncoderSpec:
        return EncoderSpec.from_dict(data)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    kwargs = {}
    hints = _resolved_types(cls)
    for name, value in data.items():
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _resolved_types(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    return _build(ModelConfig, data, "config")


def config_search_path() -> list[Path]:
    """Folders searched for ``<name>.yaml``: the source tree, then the installed ROS share folder(s)."""
    return resource_candidates("config", "models")


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    for folder in config_search_path():
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for folder in config_search_path() if folder.is_dir() for p in folder.glob("*.yaml")})
    raise FileNotFoundError(f"model config {str(name_or_path)!r} not found; known configs: {known}")


def load_config(name_or_path: str | os.PathLike) -> ModelConfig:
    """Load a model config by name (``tiny``, ``navsim``) or from a YAML file path.

    A relative ``trajectory_head.anchors`` path is resolved against the YAML file's folder.
    """
    path = resolve_config_path(name_or_path)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    cfg = config_from_dict(data)
    anchors = cfg.trajectory_head.anchors
    if anchors and not Path(anchors).is_absolute():
        resolved = (path.parent / anchors).resolve()
        cfg = cfg.replace(trajectory_head=dataclasses.replace(cfg.trajectory_head, anchors=str(resolved)))
    return cfg


def save_config(cfg: ModelConfig, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
