"""A quick look at what expert samples contain: agents in range and LiDAR returns above the ground split.

Training needs traffic in most samples and vehicles that show up in the LiDAR histogram (points above the
config's ``min_z``); this counts both over a few seeds and plots their histograms.

    python -m diffusiondrive_ros.sim.data_check --seeds 10 --per-seed 5 --out data_check.png
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from ..model.config import ModelConfig, load_config
from ..runtime.preprocess import lidar_feature
from .expert import iter_expert_samples


@dataclass
class SampleStats:
    seed: int
    t: float
    agents: int  # agents whose centre is within the LiDAR range square
    lidar_pixels: int  # non-zero pixels of the model's LiDAR histogram (points above min_z)
    points_above_split: int


def sample_statistics(seeds: list[int], config: ModelConfig, per_seed: int = 5, interval_s: float = 2.0,
                      perturb: bool = False, progress: bool = True) -> list[SampleStats]:
    """Statistics of ``per_seed`` samples, ``interval_s`` apart, for each seed."""
    from tqdm import tqdm

    stats = []
    for seed in tqdm(seeds, desc="sampling", unit="seed", disable=not progress):
        for sample in iter_expert_samples(seed, config, sample_interval_s=interval_s, max_samples=per_seed,
                                          perturb=perturb, camera_width=480):
            points = sample.frame.lidar_points
            stats.append(SampleStats(seed, sample.t, len(sample.agent_boxes),
                                     int(np.count_nonzero(lidar_feature(points, config.lidar))),
                                     int(np.count_nonzero(points[:, 2] > config.lidar.min_z))))
    return stats


def plot_statistics(stats: list[SampleStats], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), dpi=110)
    agents = [s.agents for s in stats]
    axes[0].hist(agents, bins=np.arange(max(agents) + 2) - 0.5, color="tab:blue")
    axes[0].set_xlabel("agents within LiDAR range")
    axes[0].set_ylabel("samples")
    axes[1].hist([s.lidar_pixels for s in stats], bins=20, color="tab:orange")
    axes[1].set_xlabel("non-zero LiDAR histogram pixels (z > min_z)")
    fig.suptitle(f"{len(stats)} expert samples")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="training seeds 0 .. N-1")
    parser.add_argument("--per-seed", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--perturb", action="store_true")
    parser.add_argument("--out", help="PNG of the histograms")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    stats = sample_statistics(list(range(args.seeds)), config, args.per_seed, args.interval, args.perturb)
    agents = np.array([s.agents for s in stats])
    pixels = np.array([s.lidar_pixels for s in stats])
    print(f"{len(stats)} samples: agents per sample mean {agents.mean():.1f}, "
          f"with >= 1 agent {np.mean(agents > 0):.0%}; "
          f"LiDAR pixels mean {pixels.mean():.0f}, with > 0 {np.mean(pixels > 0):.0%}")
    print("agents histogram:", dict(zip(*np.unique(agents, return_counts=True))))
    for s in stats:
        print(f"seed {s.seed:3d} t {s.t:5.1f} agents {s.agents:3d} lidar_pixels {s.lidar_pixels:4d} "
              f"points>split {s.points_above_split:5d}")
    if args.out:
        plot_statistics(stats, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
