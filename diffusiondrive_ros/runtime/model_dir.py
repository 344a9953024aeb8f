"""A model directory: everything a planner needs in one folder, loaded by pointing ``model_path`` at it.

Layout (written by the training/export tools and by ``nas-compress export``):
    model.yaml               the model config (load_config reads it)
    model.safetensors        weights in our checkpoint format (torch backend)
    planner.onnx             the exported planner graph (onnxruntime / tensorrt backends)
    anchors.npy              the trajectory anchors (also inside the weights; model.yaml points here)
    README.md                the model card
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..files import file_sha256
from ..model.config import ModelConfig, load_config
from ..resources import resource_candidates

CONFIG_NAME = "model.yaml"
CHECKPOINT_NAME = "model.safetensors"
ONNX_NAME = "planner.onnx"
CARD_NAME = "README.md"
ANCHORS_NAME = "anchors.npy"

# Which file of the directory each backend runs.
BACKEND_FILE = {"torch": CHECKPOINT_NAME, "onnxruntime": ONNX_NAME, "tensorrt": ONNX_NAME}


def is_model_dir(path: str | os.PathLike | None) -> bool:
    return path is not None and Path(path).is_dir() and (Path(path) / CONFIG_NAME).is_file()


def load_model_dir(path: str | os.PathLike, backend: str) -> tuple[ModelConfig, Path]:
    """The directory's config and the file the ``backend`` runs; clear errors for what is missing."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model directory not found: {folder}")
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(not_a_model_dir_message(folder))
    if backend not in BACKEND_FILE:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKEND_FILE)}")
    model_file = folder / BACKEND_FILE[backend]
    if not model_file.is_file():
        raise FileNotFoundError(f"model directory {folder} has no {model_file.name} for the {backend} backend")
    return load_config(folder / CONFIG_NAME), model_file


def not_a_model_dir_message(folder: str | os.PathLike) -> str:
    """Why a folder given as a model is not a model directory, naming what it does hold (e.g. a lone planner.onnx,
    which a backend would otherwise report as "ONNX model not found")."""
    folder = Path(folder)
    present = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
    return (f"{folder} is not a model directory: it has no {CONFIG_NAME} "
            f"(it holds {', '.join(present) if present else 'nothing'}); point model_path at a model directory "
            f"or at the model file itself")


def model_fingerprint(path: str | os.PathLike) -> str:
    """sha256 over the directory's config, graph, weights and anchors (those present): the model's identity."""
    folder = Path(path)
    digest = hashlib.sha256()
    for name in (CONFIG_NAME, ONNX_NAME, CHECKPOINT_NAME, ANCHORS_NAME):
        if (folder / name).is_file():
            digest.update(f"{name}:{file_sha256(folder / name)}\n".encode())
    return digest.hexdigest()


def shipped_model_dir(name: str = "tiny") -> Path:
    """The model directory shipped with the package (``models/<name>``), from the source tree or the installed share."""
    candidates = resource_candidates("models", name)
    for folder in candidates:
        if is_model_dir(folder):
            return folder
    raise FileNotFoundError(f"shipped model {name!r} not found; looked in {[str(c) for c in candidates]}")


def write_model_dir(model, folder: str | os.PathLike) -> ModelConfig:
    """Write the weights, the anchors and a config pointing at them; the caller exports ``planner.onnx`` next to them.

    Returns the config as written (its anchors entry is the directory's ``anchors.npy``).
    """
    import dataclasses

    import numpy as np

    from ..model.checkpoint import save_checkpoint
    from ..model.config import save_config

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / ANCHORS_NAME, model.trajectory_head.plan_anchor.detach().cpu().numpy())
    cfg = model.config
    written = cfg.replace(trajectory_head=dataclasses.replace(cfg.trajectory_head, anchors=ANCHORS_NAME))
    save_config(written, out / CONFIG_NAME)
    original, model.config = model.config, written  # the checkpoint carries the same, relocatable config
    try:
        save_checkpoint(model, out / CHECKPOINT_NAME)
    finally:
        model.config = original
    return load_config(out / CONFIG_NAME)
