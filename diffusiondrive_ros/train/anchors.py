"""Trajectory anchors by k-means: cluster the training set's future (x, y) trajectories into k 16-d centres.

Our own seeded k-means (k-means++ initialisation, several restarts, Lloyd iterations), so the anchors of a dataset
are reproducible bit-for-bit from (data, k, seed). Used by ``diffusiondrive anchors`` and by the trainer when no
anchors file is given.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract import NUM_POSES
from ..data import shards
from ..data.dataset import SPLITS, is_validation_scene

log = logging.getLogger(__name__)

ANCHORS_FILE = "anchors.npy"  # the name the trainer looks for inside a dataset folder and writes into a run folder


@dataclass(frozen=True)
class KMeansResult:
    centres: np.ndarray  # (k, d) float64
    labels: np.ndarray  # (N,) int
    inertia: float  # sum of squared distances to the assigned centre

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.centres))


def check_trajectories(trajectories: np.ndarray, source: str = "trajectories") -> np.ndarray:
    """(N, 8, 2) float64 from (N, 8, 2) or (N, 8, 3) (heading dropped); raises on bad shapes or non-finite values."""
    array = np.asarray(trajectories)
    if array.ndim != 3 or array.shape[1] != NUM_POSES or array.shape[2] not in (2, 3):
        raise ValueError(f"{source} must have shape (N, {NUM_POSES}, 2 or 3), got {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{source} must be numeric, got dtype {array.dtype}")
    xy = array[..., :2].astype(np.float64)
    if not np.isfinite(xy).all():
        raise ValueError(f"{source} contains {int((~np.isfinite(xy)).sum())} non-finite values")
    return xy


def load_dataset_trajectories(
    data_dir: str | os.PathLike, split: str = "train", val_fraction: float = 0.1
) -> np.ndarray:
    """All future trajectories (N, 8, 2) of a dataset folder's split, reading only the shards' ``trajectory`` arrays.

    The split is the same scene-level split as DrivingDataset's.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data_dir = Path(data_dir)
    manifest = shards.read_manifest(data_dir)
    parts = []
    for entry in manifest["shards"]:
        if entry["num_samples"] == 0:
            continue
        if split != "all" and is_validation_scene(entry["scene_id"], val_fraction) != (split == "val"):
            continue
        arrays, _ = shards.read_shard(data_dir / entry["file"], keys=["trajectory"])
        parts.append(arrays["trajectory"])
    if not parts:
        raise ValueError(f"{data_dir} has no samples in split {split!r}")
    return check_trajectories(np.concatenate(parts), str(data_dir))


def load_trajectories(source: str | os.PathLike, split: str = "train", val_fraction: float = 0.1) -> np.ndarray:
    """Trajectories (N, 8, 2) from a dataset folder or an ``.npy`` file of shape (N, 8, 2|3)."""
    path = Path(source)
    if path.is_dir():
        return load_dataset_trajectories(path, split, val_fraction)
    if path.suffix != ".npy" or not path.is_file():
        raise FileNotFoundError(f"{source} is neither a dataset folder nor an existing .npy file")
    return check_trajectories(np.load(path, allow_pickle=False), str(path))


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (points**2).sum(1)[:, None] - 2.0 * points @ centres.T + (centres**2).sum(1)[None]
    return np.maximum(d, 0.0)


def kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability proportional to the squared distance."""
    centres = [points[rng.integers(len(points))]]
    closest = _squared_distances(points, centres[0][None])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        index = rng.choice(len(points), p=closest / total) if total > 0 else rng.integers(len(points))
        centres.append(points[index])
        closest = np.minimum(closest, _squared_distances(points, points[index][None])[:, 0])
    return np.stack(centres)


def lloyd(points: np.ndarray, centres: np.ndarray, max_iter: int, tol: float) -> KMeansResult:
    """Lloyd iterations; an emptied cluster is re-seeded at the point farthest from its centre."""
    centres = centres.copy()
    for _ in range(max_iter):
        dist = _squared_distances(points, centres)
        labels = dist.argmin(axis=1)
        new = np.zeros_like(centres)
        counts = np.bincount(labels, minlength=len(centres))
        np.add.at(new, labels, points)
        for c in np.flatnonzero(counts == 0):
            far = int(dist[np.arange(len(points)), labels].argmax())
            new[c], counts[c] = points[far], 1
            labels[far] = c
        new /= counts[:, None]
        shift = float(np.abs(new - centres).max())
        centres = new
        if shift <= tol:
            break
    dist = _squared_distances(points, centres)
    labels = dist.argmin(axis=1)
    return KMeansResult(centres, labels, float(dist[np.arange(len(points)), labels].sum()))


def kmeans(
    points: np.ndarray, k: int, seed: int = 0, restarts: int = 8, max_iter: int = 300, tol: float = 1e-6
) -> KMeansResult:
    """Best (lowest inertia) of ``restarts`` seeded k-means++ / Lloyd runs on points (N, d)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points must be (N, d), got {points.shape}")
    if k < 1 or restarts < 1:
        raise ValueError(f"k and restarts must be >= 1, got k={k}, restarts={restarts}")
    if len(points) < k:
        raise ValueError(f"need at least k={k} points, got {len(points)}")
    if not np.isfinite(points).all():
        raise ValueError("points contain non-finite values")
    rng = np.random.default_rng(seed)
    best: KMeansResult | None = None
    for _ in range(restarts):
        result = lloyd(points, kmeans_plus_plus(points, k, rng), max_iter, tol)
        if best is None or result.inertia < best.inertia:
            best = result
    assert best is not None
    return best


def cluster_anchors(
    trajectories: np.ndarray, k: int = 20, seed: int = 0, restarts: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """(anchors (k, 8, 2) float32, cluster sizes (k,)) of trajectories (N, 8, 2|3), ordered by final (x, y).

    The fixed order makes the file independent of which restart won; it has no meaning to the model.
    """
    xy = check_trajectories(trajectories)
    result = kmeans(xy.reshape(len(xy), -1), k, seed=seed, restarts=restarts)
    anchors = result.centres.reshape(k, NUM_POSES, 2)
    distinct = len(np.unique(xy.reshape(len(xy), -1), axis=0))
    if distinct < k:
        log.warning("only %d distinct trajectories for k=%d anchors: some anchors repeat (empty clusters)", distinct, k)
    order = np.lexsort((anchors[:, -1, 1], anchors[:, -1, 0]))
    return anchors[order].astype(np.float32), result.sizes[order]


def save_anchors(anchors: np.ndarray, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(anchors, dtype=np.float32))
    return path


def plot_anchors(
    anchors: np.ndarray, trajectories: np.ndarray, path: str | os.PathLike, max_lines: int = 3000, seed: int = 0
) -> Path:
    """BEV plot (x forward up, y left to the left) of the anchors over a sample of the trajectory cloud."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traj = check_trajectories(trajectories)
    if len(traj) > max_lines:
        traj = traj[np.random.default_rng(seed).choice(len(traj), max_lines, replace=False)]
    fig, ax = plt.subplots(figsize=(6, 8))
    origin = np.zeros((1, 2))
    for t in traj:
        p = np.concatenate([origin, t])
        ax.plot(p[:, 1], p[:, 0], color="0.6", lw=0.5, alpha=0.25, zorder=1)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, len(anchors)))
    for i, a in enumerate(np.asarray(anchors, dtype=np.float64)):
        p = np.concatenate([origin, a])
        ax.plot(p[:, 1], p[:, 0], "-o", color=colours[i], lw=1.8, ms=3, zorder=2)
    ax.plot([0], [0], marker="^", color="k", ms=10, zorder=3)
    ax.set_xlabel("y [m] (left +)")
    ax.set_ylabel("x [m] (forward)")
    ax.invert_xaxis()  # ego frame y points left: left of the plot is +y
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, lw=0.3)
    ax.set_title(f"{len(anchors)} k-means anchors over {len(traj)} trajectories")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
