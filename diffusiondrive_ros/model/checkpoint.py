"""Our checkpoint format: one safetensors file holding the weights, the model config and a format version.

The anchors travel inside the weights (``trajectory_head.plan_anchor``), so a checkpoint is self-contained.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import ModelConfig, config_from_dict
from .diffusiondrive import DiffusionDriveModel

FORMAT_NAME = "diffusiondrive_ros"
FORMAT_VERSION = 1
ANCHOR_KEY = "trajectory_head.plan_anchor"  # the anchors' tensor in every checkpoint


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: wrong file, wrong version, or keys/shapes that do not match the model."""


def save_checkpoint(model: DiffusionDriveModel, path: str | Path, extra: dict | None = None) -> Path:
    """Write weights + config + version; written to a temp file and renamed so a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FORMAT_NAME,
        "version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict()),
        "extra": json.dumps(extra or {}),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelConfig, dict]:
    """Tensors, config and extra metadata of a checkpoint file, validated."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a {FORMAT_NAME} checkpoint (not a readable safetensors file: {exc})"
        ) from exc
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is a safetensors file but not a {FORMAT_NAME} checkpoint (no format tag)")
    version = int(metadata.get("version", -1))
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}; this code reads {FORMAT_VERSION}")
    cfg = config_from_dict(json.loads(metadata["config"]))
    return tensors, cfg, json.loads(metadata.get("extra", "{}"))


def check_state_dict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError listing every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(tensors)
        if tuple(tensors[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {shapes}")
    if problems:
        raise CheckpointError(f"{source} does not match the model:\n  " + "\n  ".join(problems))


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[DiffusionDriveModel, ModelConfig]:
    """Build the model described by the checkpoint and load its weights (strict). Returns (model in eval mode, cfg)."""
    tensors, cfg, _ = read_checkpoint(path)
    anchors = tensors.get(ANCHOR_KEY)
    model = DiffusionDriveModel(cfg, anchors=None if anchors is None else anchors.numpy())
    check_state_dict(model, tensors, str(path))
    model.load_state_dict(tensors, strict=True)
    return model.to(map_location).eval(), cfg
