"""The DiffusionDrive network in PyTorch, its configs, checkpoints and losses.

Names are imported lazily so that ``diffusiondrive_ros.model.config`` (needed by every consumer, e.g. an ONNX
Runtime node) does not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ModelConfig, load_config
    from .diffusiondrive import DiffusionDriveModel, build_model

__all__ = ["DiffusionDriveModel", "ModelConfig", "build_model", "load_config"]

_SOURCES = {
    "ModelConfig": ".config",
    "load_config": ".config",
    "DiffusionDriveModel": ".diffusiondrive",
    "build_model": ".diffusiondrive",
}


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        import importlib

        return getattr(importlib.import_module(_SOURCES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
