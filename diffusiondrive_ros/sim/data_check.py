"""A quick look at what expert samples contain: agents in range and LiDAR returns above the ground split.

Training needs traffic in most samples and vehicles that show up in the LiDAR histogram (points above the
config's ``min_z``); this counts both over a few seeds and plots their histograms.

    diffusiondrive data check --seeds 10 --per-seed 5 --out data_check.png
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.config import ModelConfig
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
