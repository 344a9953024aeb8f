"""Shared setup of the nas_compression tests: one torch thread, and one small generated planner data set."""

from __future__ import annotations

import pytest
import torch

from diffusiondrive_ros.data.dataset import DrivingDataset
from diffusiondrive_ros.model import load_config
from diffusiondrive_ros.sim.datagen import generate

SOURCE = "diffusiondrive_ros.data.synthetic:iter_synthetic_samples"


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def planner_data(tmp_path_factory):
    """Seeds 0..9 put scenes 2 and 9 in the 10 % validation split: 32 train and 8 val samples."""
    out = tmp_path_factory.mktemp("planner_data")
    generate(out, scenes=10, seed=0, workers=0, config=load_config("tiny"), samples_per_scene=4, source=SOURCE,
             progress=False)
    assert len(DrivingDataset(out, split="val")) > 0 and len(DrivingDataset(out, split="train")) > 0
    return out
