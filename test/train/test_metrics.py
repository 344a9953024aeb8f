"""Validation metrics on hand-made cases: displacement errors, min over modes, mode accuracy, mode diversity."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.train.metrics import (
    MetricAccumulator,
    ade_fde,
    batch_metrics,
    horizon_index,
    min_over_modes,
    mode_accuracy,
    mode_diversity,
    swept_masks,
)


def straight(speed: float, lateral: float = 0.0) -> np.ndarray:
    t = 0.5 * np.arange(1, 9)
    return np.stack([speed * t, np.full(8, lateral)], -1)


def test_ade_fde_of_a_constant_offset_and_of_a_growing_error() -> None:
    target = straight(10.0)[None]
    offset = ade_fde(target + np.array([0.0, 1.0]), target)
    for h in (1, 2, 3, 4):
        assert offset[f"ade_{h}s"][0] == pytest.approx(1.0) and offset[f"fde_{h}s"][0] == pytest.approx(1.0)
    slower = ade_fde(straight(8.0)[None], target)  # error 1 m per 0.5 s pose: 1, 2, ..., 8
    assert slower["fde_1s"][0] == pytest.approx(2.0) and slower["ade_1s"][0] == pytest.approx(1.5)
    assert slower["fde_4s"][0] == pytest.approx(8.0) and slower["ade_4s"][0] == pytest.approx(4.5)
    assert horizon_index(2.0) == 4
    with pytest.raises(ValueError):
        horizon_index(4.5)


def test_min_over_modes_takes_each_minimum_separately() -> None:
    target = straight(10.0)
    good_start = straight(10.0)
    good_start[-1] += [0.0, 4.0]  # ADE 0.5, FDE 4
    good_end = target + [0.0, 2.0]  # ADE 2, FDE 2
    out = min_over_modes(np.stack([good_start, good_end])[None], target[None])
    assert out["min_ade"][0] == pytest.approx(0.5) and out["min_fde"][0] == pytest.approx(2.0)


def test_mode_accuracy_uses_the_positive_anchor() -> None:
    anchors = np.stack([straight(0.0), straight(10.0), straight(10.0, 5.0)])
    target = np.stack([straight(9.0), straight(10.0, 4.0)])
    right = np.array([[0.1, 0.9, 0.0], [0.0, 0.2, 0.8]])
    wrong = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2]])
    assert mode_accuracy(right, target, anchors).tolist() == [1.0, 1.0]
    assert mode_accuracy(wrong, target, anchors).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        mode_accuracy(right[:, :2], target, anchors)


def test_identical_modes_have_zero_diversity() -> None:
    modes = np.repeat(straight(8.0, 0.0)[None, None], 20, axis=1)
    assert mode_diversity(modes)[0] == pytest.approx(0.0)


def test_modes_apart_except_at_the_ego_have_diversity_close_to_one_minus_one_over_m() -> None:
    # Four 40 m rays in four directions: they only share the ego's own footprint at the origin.
    t = np.linspace(5.0, 40.0, 8)
    rays = [np.stack([c * t, s * t], -1) for c, s in ((1, 0), (0, 1), (-1, 0), (0, -1))]
    d = mode_diversity(np.stack(rays)[None])[0]
    assert 0.75 - 0.03 < d < 0.75


def test_swept_footprint_area_matches_the_buffered_polyline() -> None:
    masks = swept_masks(straight(10.0)[None], ego_width=2.0, resolution=0.05)
    area = masks[0].sum() * 0.05**2
    expected = 40.0 * 2.0 + np.pi * 1.0**2  # rectangle + two half-disc caps
    assert area == pytest.approx(expected, rel=0.08)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        ade_fde(np.zeros((2, 7, 2)), np.zeros((2, 7, 2)))
    bad = straight(1.0)[None].copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        ade_fde(bad, straight(1.0)[None])


def test_batch_metrics_and_accumulator_average_per_sample() -> None:
    anchors = np.stack([straight(0.0), straight(10.0)])
    target = np.stack([straight(10.0), straight(10.0)])
    modes = np.repeat(anchors[None], 2, axis=0)
    traj = np.stack([straight(10.0), straight(8.0)])
    m = batch_metrics(traj, modes, np.array([[0.0, 1.0], [1.0, 0.0]]), target, anchors)
    acc = MetricAccumulator()
    acc.add({k: v[:1] for k, v in m.items()})
    acc.add({k: v[1:] for k, v in m.items()})
    means = acc.means()
    assert means["mode_accuracy"] == pytest.approx(0.5)
    assert means["fde_4s"] == pytest.approx(4.0)
    assert means["min_ade"] == pytest.approx(0.0)
    assert 0.0 < means["diversity"] < 1.0
