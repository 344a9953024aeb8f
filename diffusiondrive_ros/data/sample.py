"""The training-sample record every source yields (simulator expert, synthetic generator, NAVSIM logs).

Raw sensors plus targets, all in the ego frame; ``sim.datagen`` preprocesses and writes them into shards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.types import SensorFrame


@dataclass
class DrivingSample:
    scene_id: str
    t: float
    seed: int
    frame: SensorFrame
    expert_future: np.ndarray  # (8, 3) x, y, heading at 0.5 .. 4.0 s
    agent_boxes: np.ndarray  # (N, 5) float32 x, y, heading, length, width of agents within +-range
    agent_kinds: np.ndarray  # (N,) int8 agent-kind codes
    bev_semantic: np.ndarray  # (H, W) uint8 NAVSIM classes
    perturbed: bool = False  # taken while the expert recovers from an injected offset
    token: str = ""  # the source's frame id (NAVSIM token), when it has one
