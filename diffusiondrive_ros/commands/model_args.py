"""The one ``--model`` option of every command that takes a model, and what it resolves to.

``--model`` is a model directory (``planner.onnx`` + ``model.safetensors`` + ``model.yaml``: every backend), one of
our ``.safetensors`` checkpoints (torch; it carries its config), or an exported ``.onnx`` / TensorRT engine file (its
config comes from ``--config``). Without ``--model`` the torch backend builds ``--config`` with seeded random weights.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..model.config import ModelConfig

MODEL_HELP = ("model directory, our .safetensors checkpoint (torch), or an .onnx / TensorRT engine file "
              "(onnxruntime, tensorrt); without it the torch backend uses random weights")


def add_model_arguments(parser: argparse.ArgumentParser, *, backend_default: str = "torch",
                        model_help: str = MODEL_HELP) -> None:
    """``--model``, ``--config`` and ``--backend``."""
    parser.add_argument("--model", help=model_help)
    parser.add_argument("--config", default="tiny",
                        help="model config (name or YAML) for an .onnx/engine file or random weights; a model "
                             "directory or checkpoint brings its own")
    parser.add_argument("--backend", default=backend_default, help="torch, onnxruntime or tensorrt")


@dataclass(frozen=True)
class ResolvedModel:
    """What ``--model`` names: the config the planner runs with and the file its backend loads (None: random)."""

    config: ModelConfig
    path: str | None
    kind: str  # "directory", "checkpoint", "file" or "random"


def resolve_model(model: str | None, backend: str, config: str = "tiny") -> ResolvedModel:
    """Resolve ``--model`` for ``backend`` (see the module docstring); raises SystemExit with a reason if unusable."""
    from ..model.config import load_config
    from ..runtime.model_dir import is_model_dir, load_model_dir

    if model is None:
        if backend != "torch":
            raise SystemExit(f"the {backend} backend needs --model (a model directory or an exported file)")
        return ResolvedModel(load_config(config), None, "random")
    if is_model_dir(model):
        cfg, path = load_model_dir(model, backend)
        return ResolvedModel(cfg, str(path), "directory")
    if not Path(model).is_file():
        raise SystemExit(f"--model {model}: no such file or model directory")
    if Path(model).suffix == ".safetensors":
        if backend != "torch":
            raise SystemExit(f"--model {model} is a checkpoint: the {backend} backend needs an exported file or a "
                             "model directory (diffusiondrive export --model-dir)")
        from ..model.checkpoint import read_checkpoint

        return ResolvedModel(read_checkpoint(model)[1], str(model), "checkpoint")
    return ResolvedModel(load_config(config), str(model), "file")
