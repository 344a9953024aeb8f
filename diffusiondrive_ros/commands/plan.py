"""``diffusiondrive plan``: plan frames of generated sensor data and print the trajectory and its latency."""

from __future__ import annotations

import argparse

import numpy as np

from ..data.synthetic import synthetic_frame
from .model_args import add_model_arguments, resolve_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--frames", type=int, default=20, help="frames to plan (latency is reported over them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated sensor data and the noise")


def run(args: argparse.Namespace) -> int:
    from ..runtime.backends import make_planner

    model = resolve_model(args.model, args.backend, args.config)
    cfg = model.config
    planner = make_planner(cfg, args.backend, model.path, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    lat = []
    result = None
    for i in range(args.frames):
        result = planner.plan(synthetic_frame(cfg, rng, stamp=0.1 * i))
        lat.append(result.latency_ms)
    assert result is not None
    print(f"planner: config {cfg.name}, backend {planner.backend_name}, providers {planner.providers}")
    print(f"best mode {result.best_mode} (score {result.mode_scores[result.best_mode]:.3f}); trajectory (ego frame):")
    print(f"{'t [s]':>6} {'x [m]':>8} {'y [m]':>8} {'heading [rad]':>14}")
    for t, (x, y, h) in zip(result.times, result.trajectory):
        print(f"{t:>6.1f} {x:>8.2f} {y:>8.2f} {h:>14.3f}")
    warm = lat[1:] or lat
    for stage in ("preprocess", "infer", "postprocess", "total"):
        values = np.array([d[stage] for d in warm])
        print(f"latency {stage:<12} p50 {np.percentile(values, 50):7.2f} ms   p90 {np.percentile(values, 90):7.2f} ms")
    planner.close()
    return 0
