"""The deployment settings a command can override: start-noise scale and trajectory smoothing."""

from __future__ import annotations

import argparse
import math

from ..runtime.smoothing import SMOOTHING_METHODS


def noise_scale(text: str) -> float:
    """A finite, non-negative start-noise scale (argparse type)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text}")
    return value


def add_sampling_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """``--smoothing`` and ``--noise-scale``; ``default`` says what applies when they are not given."""
    parser.add_argument("--smoothing", choices=SMOOTHING_METHODS,
                        help=f"post-processing of the best plan (default: {default} trajectory_head."
                             "trajectory_smoothing)")
    parser.add_argument("--noise-scale", type=noise_scale,
                        help="std of the start noise relative to the schedule (default: "
                             f"{default} trajectory_head.sampling_noise_scale; 0: deterministic)")
