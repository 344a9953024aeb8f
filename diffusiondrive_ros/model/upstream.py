"""Import checkpoints trained with the upstream NAVSIM code (hustvl/DiffusionDrive, a Lightning state dict).

Upstream names are ``agent._transfuser_model.<path>`` with private (underscore-prefixed) module names, e.g.
``agent._transfuser_model._trajectory_head.diff_decoder.layers.0.ffn.0.weight``; the ResNets use the torchvision/timm
layout. Our modules carry the same names without the prefix and the leading underscores, so the mapping is a
name rewrite; every upstream tensor must map to exactly one of ours with the same shape.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import ANCHOR_KEY, CheckpointError, check_state_dict
from .config import ModelConfig
from .diffusiondrive import DiffusionDriveModel

UPSTREAM_PREFIX = "agent._transfuser_model."


def upstream_to_ours(key: str) -> str:
    """Our parameter name for an upstream key; CheckpointError if it does not belong to the upstream model."""
    if not key.startswith(UPSTREAM_PREFIX):
        raise CheckpointError(f"not an upstream DiffusionDrive key (no {UPSTREAM_PREFIX!r} prefix): {key}")
    return ".".join(part.lstrip("_") for part in key[len(UPSTREAM_PREFIX) :].split("."))


def ours_to_upstream(model: torch.nn.Module) -> dict[str, str]:
    """Our name -> upstream name, derived from the module tree (the private attribute names upstream used)."""
    mapping = {}
    for name in model.state_dict():
        parts = name.split(".")
        # Top-level modules and the agent head's MLPs were private attributes upstream.
        parts[0] = parts[0] if parts[0] == "bev_proj" else "_" + parts[0]
        if parts[0] == "_agent_head":
            parts[1] = "_" + parts[1]
        mapping[name] = UPSTREAM_PREFIX + ".".join(parts)
    return mapping


def convert_upstream_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename upstream tensors to ours; a name that two upstream keys would share is an error."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, tensor in state_dict.items():
        ours = upstream_to_ours(key)
        if ours in out:
            raise CheckpointError(f"upstream keys {origin[ours]!r} and {key!r} both map to {ours!r}")
        out[ours], origin[ours] = tensor, key
    return out


def load_upstream_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an upstream Lightning checkpoint (``state_dict`` entry) or a bare state dict file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"upstream checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a non-checkpoint file
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return state


def import_upstream(path: str | Path, cfg: ModelConfig) -> DiffusionDriveModel:
    """Build our model for ``cfg`` (normally ``navsim``) and load an upstream checkpoint into it, strictly."""
    tensors = convert_upstream_state_dict(load_upstream_state_dict(path))
    anchors = tensors.get(ANCHOR_KEY)
    model = DiffusionDriveModel(cfg, anchors=None if anchors is None else anchors.numpy())
    check_state_dict(model, tensors, f"upstream checkpoint {path}")
    model.load_state_dict(tensors, strict=True)
    return model.eval()
