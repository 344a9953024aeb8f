#!/usr/bin/env python3
"""Benchmark preprocessing of a full-size frame: fast paths vs the naive NAVSIM reference, side by side.

A frame is three 1920x1080 uint8 cameras and a 100k-point LiDAR sweep (seeded). For each model config the camera
feature, the LiDAR feature and the whole ``preprocess_frame`` are timed against the naive implementations in the
same run (same inputs, alternating call by call), after checking that both give identical tensors.

    python bench/bench_preprocess.py --runs 200 --json /tmp/bench_preprocess.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusiondrive_ros.data.synthetic import synthetic_frame  # noqa: E402
from diffusiondrive_ros.model.config import ModelConfig, load_config  # noqa: E402
from diffusiondrive_ros.runtime.preprocess import (  # noqa: E402
    camera_feature,
    camera_layout,
    lidar_feature,
    preprocess_frame,
    status_feature,
)
from diffusiondrive_ros.runtime.preprocess_reference import (  # noqa: E402
    camera_feature_reference,
    lidar_feature_reference,
)
from diffusiondrive_ros.runtime.types import PlannerInputs, SensorFrame  # noqa: E402

FRAME_BUDGET_MS = 22.0  # the whole planner's per-frame budget; preprocessing should use a small part of it


def preprocess_frame_naive(frame: SensorFrame, cfg: ModelConfig) -> PlannerInputs:
    """The whole frame through the naive reference (status is shared: there is nothing to speed up there)."""
    height, width = frame.cameras[0].shape[:2]
    layout = camera_layout(height, width, cfg.camera)
    camera = camera_feature_reference(
        *frame.cameras, layout.crop_rows, layout.side_crop_cols, cfg.camera.height, cfg.camera.width
    )
    lidar = lidar_feature_reference(frame.lidar_points, cfg.lidar)
    status = status_feature(frame.command, frame.velocity, frame.acceleration)
    return PlannerInputs(camera=camera[None], lidar=lidar[None], status=status[None])


def time_pair_ms(
    fast: Callable[[], object], naive: Callable[[], object], runs: int, warmup: int
) -> tuple[np.ndarray, np.ndarray]:
    """Time two functions alternately, so that load from other processes hits both alike."""
    for _ in range(warmup):
        fast()
        naive()
    samples = np.empty((2, runs))
    for i in range(runs):
        for j, fn in enumerate((fast, naive)):
            start = time.perf_counter()
            fn()
            samples[j, i] = (time.perf_counter() - start) * 1e3
    return samples[0], samples[1]


def summary(samples: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    return {
        "min_ms": float(samples.min()),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(samples.mean()),
    }


def bench_config(name: str, frame: SensorFrame, runs: int, warmup: int) -> list[dict[str, object]]:
    cfg = load_config(name)
    height, width = frame.cameras[0].shape[:2]
    layout = camera_layout(height, width, cfg.camera)
    cases = {
        "camera_feature": (
            lambda: camera_feature(*frame.cameras, cfg.camera),
            lambda: camera_feature_reference(
                *frame.cameras, layout.crop_rows, layout.side_crop_cols, cfg.camera.height, cfg.camera.width
            ),
        ),
        "lidar_feature": (
            lambda: lidar_feature(frame.lidar_points, cfg.lidar),
            lambda: lidar_feature_reference(frame.lidar_points, cfg.lidar),
        ),
        "preprocess_frame": (lambda: preprocess_frame(frame, cfg), lambda: preprocess_frame_naive(frame, cfg)),
    }
    fast_inputs, naive_inputs = preprocess_frame(frame, cfg), preprocess_frame_naive(frame, cfg)
    for field in ("camera", "lidar", "status"):
        if not np.array_equal(getattr(fast_inputs, field), getattr(naive_inputs, field)):
            raise RuntimeError(f"{name}: fast and naive {field} tensors differ; the benchmark would be meaningless")
    rows = []
    for stage, (fast, naive) in cases.items():
        fast_samples, naive_samples = time_pair_ms(fast, naive, runs, warmup)
        fast_stats, naive_stats = summary(fast_samples), summary(naive_samples)
        rows.append(
            {
                "config": name,
                "stage": stage,
                "fast": fast_stats,
                "naive": naive_stats,
                "speedup_p50": naive_stats["p50_ms"] / fast_stats["p50_ms"],
                "fast_path": layout.slots is not None,
            }
        )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    header = f"{'config':<7} {'stage':<17} {'fast p50/p90/p99 [ms]':>24} {'naive p50/p90/p99 [ms]':>25} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        fast, naive = row["fast"], row["naive"]
        fast_txt = f"{fast['p50_ms']:.2f}/{fast['p90_ms']:.2f}/{fast['p99_ms']:.2f}"
        naive_txt = f"{naive['p50_ms']:.2f}/{naive['p90_ms']:.2f}/{naive['p99_ms']:.2f}"
        print(f"{row['config']:<7} {row['stage']:<17} {fast_txt:>24} {naive_txt:>25} {row['speedup_p50']:>8.1f}x")
    for row in rows:
        if row["stage"] == "preprocess_frame":
            p99 = row["fast"]["p99_ms"]
            verdict = "within" if p99 < FRAME_BUDGET_MS else "OVER"
            print(
                f"{row['config']}: full frame p99 {p99:.2f} ms, {verdict} the {FRAME_BUDGET_MS:.0f} ms frame budget "
                f"({100 * p99 / FRAME_BUDGET_MS:.0f} %)"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "navsim"], help="model configs (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per stage (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: %(default)s)")
    parser.add_argument("--points", type=int, default=100_000, help="LiDAR points per sweep (default: %(default)s)")
    parser.add_argument(
        "--resolution",
        type=int,
        nargs=2,
        default=[1920, 1080],
        metavar=("W", "H"),
        help="camera resolution (default: %(default)s)",
    )
    parser.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.points < 0:
        parser.error("--runs must be >= 1, --warmup and --points >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    width, height = args.resolution
    # The synthetic frame's camera size does not depend on the config: build it at the asked resolution.
    frame = synthetic_frame(load_config("tiny").with_source_camera_size((width, height)), args.seed,
                            num_points=args.points, nan_fraction=0.001)
    print(
        f"frame: 3 x {width}x{height} cameras, {args.points} LiDAR points; {args.runs} runs after {args.warmup} "
        f"warm-up; OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads, numpy {np.__version__}"
    )
    rows = [row for name in args.configs for row in bench_config(name, frame, args.runs, args.warmup)]
    print_table(rows)
    if args.json:
        meta = {
            "resolution": [width, height],
            "points": args.points,
            "runs": args.runs,
            "warmup": args.warmup,
            "seed": args.seed,
            "opencv": cv2.__version__,
            "cv_threads": cv2.getNumThreads(),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "frame_budget_ms": FRAME_BUDGET_MS,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
