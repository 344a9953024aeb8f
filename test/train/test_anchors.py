"""k-means anchors: recovers separated clusters, is seeded, rejects bad input; the `anchors` command end to end."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from diffusiondrive_ros.commands import anchors as anchors_command
from diffusiondrive_ros.model.anchors import load_anchors
from diffusiondrive_ros.sim import datagen as gen
from diffusiondrive_ros.train.anchors import check_trajectories, cluster_anchors, kmeans, load_trajectories

SOURCE = "diffusiondrive_ros.data.synthetic:iter_synthetic_samples"


def clustered_trajectories(k: int = 5, per_cluster: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 0.5 * np.arange(1, 9)
    centres = np.stack([np.stack([v * t, c * t**2], -1) for v, c in zip(np.linspace(2, 14, k), np.linspace(-1, 1, k))])
    noisy = centres[:, None] + 0.05 * rng.standard_normal((k, per_cluster, 8, 2))
    return centres, noisy.reshape(-1, 8, 2)


def test_recovers_well_separated_clusters() -> None:
    centres, traj = clustered_trajectories()
    anchors, sizes = cluster_anchors(traj, k=5, seed=3)
    assert anchors.shape == (5, 8, 2) and anchors.dtype == np.float32
    assert sizes.tolist() == [40] * 5
    # Every true centre has an anchor within the noise level.
    d = np.linalg.norm(anchors[:, None] - centres[None], axis=-1).mean(-1)
    assert d.min(axis=0).max() < 0.05


def test_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(1)
    traj = rng.normal(size=(300, 8, 3)) * 5  # no structure: the result depends on the initialisation
    a, _ = cluster_anchors(traj, k=20, seed=7, restarts=2)
    b, _ = cluster_anchors(traj, k=20, seed=7, restarts=2)
    np.testing.assert_array_equal(a, b)
    r1 = kmeans(traj.reshape(300, -1)[:, :16], 20, seed=1, restarts=1)
    r2 = kmeans(traj.reshape(300, -1)[:, :16], 20, seed=2, restarts=1)
    assert not np.array_equal(r1.centres, r2.centres)


def test_rejects_bad_shapes_nan_and_too_few_points() -> None:
    with pytest.raises(ValueError, match="shape"):
        check_trajectories(np.zeros((10, 6, 2)))
    with pytest.raises(ValueError, match="shape"):
        check_trajectories(np.zeros((10, 16)))
    bad = np.zeros((30, 8, 2))
    bad[4, 2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        cluster_anchors(bad, k=3)
    with pytest.raises(ValueError, match="at least"):
        cluster_anchors(np.zeros((5, 8, 2)), k=20)


def test_anchors_command_on_a_dataset_and_on_an_npy(tmp_path, tiny_config) -> None:
    gen.generate(tmp_path / "data", 30, 0, 0, tiny_config, samples_per_scene=1, source=SOURCE, progress=False)
    parser = argparse.ArgumentParser()
    anchors_command.add_arguments(parser)
    out, plot = tmp_path / "anchors.npy", tmp_path / "anchors.png"
    args = parser.parse_args(["--data", str(tmp_path / "data"), "--k", "20", "--out", str(out), "--plot", str(plot)])
    assert anchors_command.run(args) == 0
    anchors = load_anchors(out, 20)  # the model's loader accepts it
    assert plot.stat().st_size > 10_000
    train_traj = load_trajectories(tmp_path / "data", "train")
    assert 20 <= len(train_traj) < 30  # the training split only
    # The same trajectories from an .npy (with headings) give the same anchors.
    np.save(tmp_path / "traj.npy", np.concatenate([train_traj, np.zeros((len(train_traj), 8, 1))], -1))
    args = parser.parse_args(["--data", str(tmp_path / "traj.npy"), "--out", str(tmp_path / "b.npy")])
    anchors_command.run(args)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), anchors)
    with pytest.raises(FileNotFoundError):
        anchors_command.run(parser.parse_args(["--data", str(tmp_path / "missing.npy"), "--out", str(out)]))
