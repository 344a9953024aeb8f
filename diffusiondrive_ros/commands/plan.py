"""``diffusiondrive plan``: plan frames of generated sensor data and print the trajectory and its latency."""

from __future__ import annotations

import argparse

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny", help="model config (ignored with --model/--checkpoint)")
    parser.add_argument("--checkpoint", help="our .safetensors checkpoint (default: random weights)")
    parser.add_argument("--onnx", help="an exported planner ONNX file (for --backend onnxruntime/tensorrt)")
    parser.add_argument("--backend", default="torch", help="torch, onnxruntime or tensorrt")
    parser.add_argument("--frames", type=int, default=20, help="frames to plan (latency is reported over them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated sensor data and the noise")


def synthetic_frame(cfg, rng: np.random.Generator, stamp: float = 0.0):
    """A plausible full-size frame: three grey-road camera images with lane stripes and a LiDAR sweep."""
    from ..runtime.types import SensorFrame

    h, w = cfg.camera.source_height, cfg.camera.source_width
    cams = []
    for _ in range(3):
        img = np.empty((h, w, 3), np.uint8)
        img[: h // 2] = (110, 160, 220)  # sky
        img[h // 2 :] = (80, 80, 85)  # road
        img[h // 2 :, w // 2 - 8 : w // 2 + 8] = 230  # a lane marking
        cams.append(img)
    n = 30000
    ground = np.column_stack([rng.uniform(-40, 40, n), rng.uniform(-40, 40, n), rng.normal(0, 0.03, n)])
    car = np.column_stack([rng.uniform(12, 16, 800), rng.uniform(-1, 1, 800), rng.uniform(0.3, 1.5, 800)])
    points = np.vstack([ground, car]).astype(np.float32)
    return SensorFrame(tuple(cams), points, velocity=(8.0, 0.0), acceleration=(0.2, 0.0), command=1, stamp=stamp)


def run(args: argparse.Namespace) -> int:
    from ..model import load_config
    from ..runtime.backends import make_planner

    if args.checkpoint:
        from ..model.checkpoint import read_checkpoint

        cfg = read_checkpoint(args.checkpoint)[1]
    else:
        cfg = load_config(args.config)
    planner = make_planner(cfg, args.backend, args.onnx or args.checkpoint, seed=args.seed)
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
