"""Training targets and the shard format: agent slots, BEV raster convention, lidar packing, atomic shards."""

from __future__ import annotations

import numpy as np
import pytest

from diffusiondrive_ros.contract import NUM_AGENTS
from diffusiondrive_ros.data import shards
from diffusiondrive_ros.data.targets import agent_targets, bev_pixels, check_bev_semantic, rasterize_boxes
from diffusiondrive_ros.model.config import load_config


def test_agent_targets_keep_nearest_inside_range_sorted_and_padded():
    rng = np.random.default_rng(0)
    boxes = np.column_stack([rng.uniform(-50, 50, 80), rng.uniform(-50, 50, 80), rng.uniform(-3, 3, 80),
                             np.full(80, 4.5), np.full(80, 2.0)]).astype(np.float32)
    states, labels = agent_targets(boxes, range_m=32.0)
    inside = boxes[(np.abs(boxes[:, 0]) <= 32) & (np.abs(boxes[:, 1]) <= 32)]
    assert states.shape == (NUM_AGENTS, 5) and labels.shape == (NUM_AGENTS,)
    n = min(len(inside), NUM_AGENTS)
    assert labels.sum() == n and labels[:n].all()
    dist = np.hypot(states[:n, 0], states[:n, 1])
    assert np.all(np.diff(dist) >= 0)
    # The kept ones are exactly the n nearest of the in-range boxes.
    expected = np.sort(np.hypot(inside[:, 0], inside[:, 1]))[:n]
    np.testing.assert_allclose(dist, expected, rtol=1e-6)
    assert np.all(states[n:] == 0)


def test_agent_targets_keep_mask_empty_input_and_bad_shape():
    boxes = np.array([[5, 0, 0, 4, 2], [3, 0, 0, 4, 2]], np.float32)
    states, labels = agent_targets(boxes, 32.0, keep=np.array([True, False]))
    assert labels.tolist()[:3] == [1, 0, 0] and states[0, 0] == 5
    states, labels = agent_targets(np.zeros((0, 5)), 32.0)
    assert labels.sum() == 0
    with pytest.raises(ValueError, match="agent boxes"):
        agent_targets(np.zeros((3, 4)), 32.0)
    with pytest.raises(ValueError, match="keep mask"):
        agent_targets(boxes, 32.0, keep=np.array([True]))


def test_bev_raster_convention_rows_forward_columns_left_to_right():
    h, w = 128, 256  # NAVSIM: 0.25 m / px, x in [0, 32), y in [-32, 32)
    np.testing.assert_allclose(bev_pixels(np.array([10.0, 0.0]), (h, w), 32.0), [128.0, 40.0])
    np.testing.assert_allclose(bev_pixels(np.array([0.0, -32.0]), (h, w), 32.0), [0.0, 0.0])
    bev = np.zeros((h, w), np.uint8)
    rasterize_boxes(bev, np.array([[10.0, 8.0, 0.0, 4.0, 2.0]]), 5, 32.0)
    rows, cols = np.nonzero(bev == 5)
    assert abs(rows.mean() - 40) <= 1 and abs(cols.mean() - (8 + 32) * 4) <= 1  # centre at x=10 m, y=8 m (left)
    assert 15 <= rows.max() - rows.min() + 1 <= 17 and 7 <= cols.max() - cols.min() + 1 <= 9  # 4 m x 2 m
    with pytest.raises(ValueError, match="shape"):
        check_bev_semantic(bev, (64, 128))
    with pytest.raises(ValueError, match="classes"):
        check_bev_semantic(np.full((h, w), 9), (h, w))


def test_lidar_packing_lossless_uint8_and_float16_fallback():
    rng = np.random.default_rng(1)
    exact = rng.integers(0, 6, (2, 1, 8, 8)).astype(np.float32) / np.float32(5.0)
    packed, enc = shards.pack_lidar(exact, 5.0)
    assert enc == shards.LIDAR_UINT8 and packed.dtype == np.uint8
    np.testing.assert_array_equal(shards.unpack_lidar(packed, enc, 5.0), exact)
    inexact = rng.random((2, 1, 8, 8)).astype(np.float32)
    packed, enc = shards.pack_lidar(inexact, 5.0)
    assert enc == shards.LIDAR_FLOAT16
    np.testing.assert_allclose(shards.unpack_lidar(packed, enc, 5.0), inexact, atol=1e-3)


def test_write_shard_is_atomic_and_verified(tmp_path, tiny_config):
    cfg = tiny_config
    arrays, enc = shards.stack_samples([], cfg)
    meta = {"format_version": shards.FORMAT_VERSION, "config_name": cfg.name, "scene_id": "s", "seed": 1,
            "num_samples": 0, "lidar_encoding": enc, "generator": {}}
    path = tmp_path / shards.shard_name(1)
    digest = shards.write_shard(path, arrays, meta)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert shards.verify_shard(path, cfg, expected_sha256=digest)["scene_id"] == "s"
    with pytest.raises(shards.ShardError, match="checksum"):
        shards.verify_shard(path, cfg, expected_sha256="0" * 64)
    with pytest.raises(shards.ShardError, match="config"):
        shards.verify_shard(path, load_config("navsim"))
    path.write_bytes(path.read_bytes()[:100])  # a torn file
    with pytest.raises(shards.ShardError):
        shards.verify_shard(path, cfg)
    with pytest.raises(ValueError, match=">= 0"):
        shards.shard_name(-1)
