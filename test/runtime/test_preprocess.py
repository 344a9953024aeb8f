"""Preprocessing: exactness against the naive NAVSIM reference, histogram edge cases, validation errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from diffusiondrive_ros.contract import DRIVING_COMMANDS, STATUS_DIM
from diffusiondrive_ros.model.config import CameraConfig, LidarConfig, load_config
from diffusiondrive_ros.runtime.preprocess import (
    camera_feature,
    camera_layout,
    command_index,
    lidar_feature,
    preprocess_batch,
    preprocess_frame,
    status_feature,
)
from diffusiondrive_ros.runtime.preprocess_reference import (
    camera_feature_reference,
    lidar_bin_edges,
    lidar_feature_reference,
)
from diffusiondrive_ros.runtime.types import SensorFrame

CONFIGS = ("tiny", "navsim")


def random_cameras(height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3)]


def random_cloud(n: int, seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    """Points spread past the histogram range and through the height thresholds, plus an intensity column."""
    rng = np.random.default_rng(seed)
    cloud = np.empty((n, 4), dtype=dtype)
    cloud[:, :2] = rng.normal(0.0, 25.0, (n, 2))
    cloud[:, 2] = rng.uniform(-3.0, 6.0, n)
    cloud[:, 3] = rng.uniform(0.0, 1.0, n)
    return cloud


# -- camera -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize(
    ("height", "width", "crop_rows", "side_crop_cols"),
    [(1080, 1920, 28, 416), (540, 960, 14, 208), (810, 1440, 21, 312), (270, 480, 7, 104)],
)
def test_camera_fast_path_is_bit_exact(name: str, height: int, width: int, crop_rows: int, side_crop_cols: int):
    cfg = load_config(name).camera
    layout = camera_layout(height, width, cfg)
    assert (layout.crop_rows, layout.side_crop_cols) == (crop_rows, side_crop_cols)
    assert layout.slots is not None, "these resolutions must take the fast path"
    cameras = random_cameras(height, width, seed=height)
    fast = camera_feature(*cameras, cfg)
    naive = camera_feature_reference(*cameras, crop_rows, side_crop_cols, cfg.height, cfg.width)
    assert fast.shape == (3, cfg.height, cfg.width) and fast.dtype == np.float32 and fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, naive)


def test_camera_fallback_when_factors_do_not_divide():
    cfg = CameraConfig(height=250, width=1000)
    assert camera_layout(1080, 1920, cfg).slots is None
    cameras = random_cameras(1080, 1920, seed=1)
    np.testing.assert_array_equal(camera_feature(*cameras, cfg), camera_feature_reference(*cameras, 28, 416, 250, 1000))


@pytest.mark.parametrize(
    "view",
    [lambda a: a[..., ::-1], np.asfortranarray, lambda a: a[::-1]],
    ids=["bgr-to-rgb-view", "fortran-order", "flipped-rows"],
)
def test_camera_accepts_strided_views(view):
    cfg = load_config("navsim").camera
    cameras = [view(image) for image in random_cameras(540, 960, seed=2)]
    np.testing.assert_array_equal(
        camera_feature(*cameras, cfg), camera_feature_reference(*cameras, 14, 208, cfg.height, cfg.width)
    )


def test_camera_keeps_rgb_order_and_unit_range(tiny_config):
    cfg = tiny_config.camera
    red = np.zeros((540, 960, 3), dtype=np.uint8)
    red[..., 0] = 255
    out = camera_feature(red, red, red, cfg)
    np.testing.assert_array_equal(out[0], 1.0)
    np.testing.assert_array_equal(out[1:], 0.0)
    out = camera_feature(*random_cameras(540, 960), cfg)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_camera_slots_follow_left_front_right():
    cfg = load_config("navsim").camera
    left, front, right = (np.full((1080, 1920, 3), value, dtype=np.uint8) for value in (10, 20, 30))
    out = camera_feature(left, front, right, cfg)[0] * 255
    # left: 1088 px -> 272 columns, front: 1920 -> 480, right: 1088 -> 272
    np.testing.assert_allclose(out[:, :272], 10, atol=1e-4)
    np.testing.assert_allclose(out[:, 272:752], 20, atol=1e-4)
    np.testing.assert_allclose(out[:, 752:], 30, atol=1e-4)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([np.zeros((540, 960, 3), np.float32)] * 3, "left camera: expected dtype uint8"),
        ([np.zeros((540, 960, 3), np.uint8)] * 2 + [np.zeros((540, 960), np.uint8)], r"right camera: .*\(H, W, 3\)"),
        ([np.zeros((540, 960, 4), np.uint8)] * 3, r"left camera: .*\(H, W, 3\)"),
        ([np.zeros((0, 0, 3), np.uint8)] * 3, "left camera: empty"),
        ([np.zeros((540, 960, 3), np.uint8), np.zeros((1080, 1920, 3), np.uint8)] * 2, "front camera is"),
        ([np.zeros((1000, 1920, 3), np.uint8)] * 3, "aspect ratio"),
        ([np.zeros((9, 16, 3), np.uint8)] * 3, "whole pixels"),
        ([[[[0, 0, 0]]]] * 3, "left camera: expected a numpy array"),
    ],
)
def test_camera_validation(images: list, message: str, tiny_config):
    with pytest.raises(ValueError, match=message):
        camera_feature(*images[:3], tiny_config.camera)


# -- LiDAR ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lidar_matches_histogramdd_on_random_clouds(name: str, dtype: type):
    cfg = load_config(name).lidar
    for seed in range(3):
        cloud = random_cloud(50_000, seed=seed, dtype=dtype)
        fast = lidar_feature(cloud, cfg)
        assert fast.shape == (1, cfg.size, cfg.size) and fast.dtype == np.float32
        np.testing.assert_array_equal(fast, lidar_feature_reference(cloud, cfg))


def edge_cloud(cfg: LidarConfig, dtype: type) -> np.ndarray:
    """Points on every bin edge, one ulp either side of it, at +-range and just outside, at the height thresholds."""
    edges = lidar_bin_edges(cfg).astype(dtype)
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    x, y = np.meshgrid(near, near[::7], indexing="ij")
    n = x.size
    heights = np.array(
        [cfg.min_z, np.nextafter(dtype(cfg.min_z), np.inf), cfg.max_z, np.nextafter(dtype(cfg.max_z), -np.inf), 1.0],
        dtype=dtype,
    )
    z = np.resize(heights, n)
    return np.stack([x.ravel(), y.ravel(), z], axis=1).astype(dtype)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lidar_edges_match_histogramdd(name: str, dtype: type):
    cfg = load_config(name).lidar
    cloud = edge_cloud(cfg, dtype)
    np.testing.assert_array_equal(lidar_feature(cloud, cfg), lidar_feature_reference(cloud, cfg))
    # Unclipped so that every point counts: the histograms must agree bin for bin.
    unclipped = dataclasses.replace(cfg, max_points_per_pixel=1e9)
    np.testing.assert_array_equal(lidar_feature(cloud, unclipped), lidar_feature_reference(cloud, unclipped))


def test_lidar_odd_range_edges_match_histogramdd():
    """A range whose bin edges are not exact binary fractions exercises the rounding correction."""
    cfg = LidarConfig(range_m=30.7, pixels_per_meter=3.3, max_points_per_pixel=1e9)
    cloud = edge_cloud(cfg, np.float64)
    np.testing.assert_array_equal(lidar_feature(cloud, cfg), lidar_feature_reference(cloud, cfg))


TINY_LIDAR = load_config("tiny").lidar  # at import: the hypothesis strategy below is built from it
EDGE_VALUES = lidar_bin_edges(TINY_LIDAR)[::8].tolist() + [-33.0, 33.0, 0.2, 100.0, np.nan, np.inf, -np.inf]
COORDINATES = st.one_of(st.sampled_from(EDGE_VALUES), st.floats(-40.0, 40.0, width=32))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(0, 64), st.just(3)), elements=COORDINATES))
def test_lidar_matches_histogramdd_property(points: np.ndarray):
    np.testing.assert_array_equal(lidar_feature(points, TINY_LIDAR), lidar_feature_reference(points, TINY_LIDAR))


def test_lidar_axes_heights_and_clipping():
    cfg = load_config("navsim").lidar
    size, r = cfg.size, cfg.range_m
    points = np.array(
        [
            [-r, -r, 1.0],  # row 0, col 0
            [r, r, 1.0],  # right edges belong to the last bin
            [-r + 0.1, r - 0.1, 1.0],  # x -> row, y -> column
            [0.0, 0.0, cfg.min_z],  # not strictly above the split height
            [0.0, 0.0, cfg.max_z],  # not strictly below the ceiling
            [r + 1e-3, 0.0, 1.0],  # outside
            [np.nan, 0.0, 1.0],
            [0.0, np.inf, 1.0],
            [0.0, 0.0, np.nan],
        ],
        dtype=np.float64,
    )
    crowd = np.tile([[1.0, 1.0, 1.0]], (12, 1))  # 12 points in one cell: clipped at 5
    hist = lidar_feature(np.concatenate([points, crowd]), cfg)[0]
    assert hist[0, 0] == pytest.approx(1 / cfg.max_points_per_pixel)
    assert hist[size - 1, size - 1] == pytest.approx(1 / cfg.max_points_per_pixel)
    assert hist[0, size - 1] == pytest.approx(1 / cfg.max_points_per_pixel)
    centre = size // 2 + int(cfg.pixels_per_meter)
    assert hist[centre, centre] == 1.0
    assert np.count_nonzero(hist) == 4


def test_lidar_empty_and_extra_columns(tiny_config):
    cfg = tiny_config.lidar
    np.testing.assert_array_equal(lidar_feature(np.zeros((0, 3), np.float32), cfg), 0.0)
    cloud = random_cloud(1000)
    cloud[::3, 3] = np.nan  # a non-finite intensity does not drop the point
    np.testing.assert_array_equal(lidar_feature(cloud, cfg), lidar_feature(np.ascontiguousarray(cloud[:, :3]), cfg))
    assert lidar_feature(cloud, cfg).sum() > 0


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.zeros((10, 3), np.int32), "float32 or float64"),
        (np.zeros((10, 2), np.float32), r"\(N, >=3\)"),
        (np.zeros(30, np.float32), r"\(N, >=3\)"),
        ([[0.0, 0.0, 1.0]], "numpy array"),
    ],
)
def test_lidar_validation(points, message: str, tiny_config):
    with pytest.raises(ValueError, match=message):
        lidar_feature(points, tiny_config.lidar)


# -- status -----------------------------------------------------------------------------------------------------------
def test_status_layout():
    for index, name in enumerate(DRIVING_COMMANDS):
        for command in (index, name, np.int64(index)):
            status = status_feature(command, (1.5, -0.25), np.array([0.5, 2.0]))
            assert status.shape == (STATUS_DIM,) and status.dtype == np.float32
            expected_onehot = np.eye(len(DRIVING_COMMANDS), dtype=np.float32)[index]
            np.testing.assert_array_equal(status[: len(DRIVING_COMMANDS)], expected_onehot)
            np.testing.assert_array_equal(status[len(DRIVING_COMMANDS) :], [1.5, -0.25, 0.5, 2.0])
        assert command_index(name) == index


@pytest.mark.parametrize(
    ("command", "velocity", "acceleration", "message"),
    [
        (1, (np.nan, 0.0), (0.0, 0.0), "velocity: non-finite"),
        (1, (0.0, 0.0), (0.0, np.inf), "acceleration: non-finite"),
        (1, (0.0, 0.0, 0.0), (0.0, 0.0), r"velocity: expected shape \(2,\)"),
        (1, "fast", (0.0, 0.0), "velocity: expected two numbers"),
        (4, (0.0, 0.0), (0.0, 0.0), "out of range"),
        (-1, (0.0, 0.0), (0.0, 0.0), "out of range"),
        ("up", (0.0, 0.0), (0.0, 0.0), "unknown driving command"),
        (True, (0.0, 0.0), (0.0, 0.0), "int index or a name"),
        (1.0, (0.0, 0.0), (0.0, 0.0), "int index or a name"),
    ],
)
def test_status_validation(command, velocity, acceleration, message: str):
    with pytest.raises(ValueError, match=message):
        status_feature(command, velocity, acceleration)


# -- frames -----------------------------------------------------------------------------------------------------------
def make_frame(seed: int, height: int = 540, width: int = 960) -> SensorFrame:
    return SensorFrame(
        cameras=tuple(random_cameras(height, width, seed)),
        lidar_points=random_cloud(5000, seed),
        velocity=(5.0 + seed, 0.1),
        acceleration=(0.2, -0.1),
        command="left",
        stamp=float(seed),
    )


@pytest.mark.parametrize("name", CONFIGS)
def test_preprocess_frame(name: str):
    cfg = load_config(name)
    frame = make_frame(0)
    inputs = preprocess_frame(frame, cfg)
    assert inputs.batch_size == 1
    for array, shape in (
        (inputs.camera, (1, 3, cfg.camera.height, cfg.camera.width)),
        (inputs.lidar, (1, 1, cfg.lidar.size, cfg.lidar.size)),
        (inputs.status, (1, STATUS_DIM)),
    ):
        assert array.shape == shape and array.dtype == np.float32 and array.flags.c_contiguous
    np.testing.assert_array_equal(inputs.camera[0], camera_feature(*frame.cameras, cfg.camera))
    np.testing.assert_array_equal(inputs.lidar[0], lidar_feature(frame.lidar_points, cfg.lidar))
    np.testing.assert_array_equal(inputs.status[0], status_feature("left", (5.0, 0.1), (0.2, -0.1)))


def test_preprocess_batch_stacks_frames_in_order(tiny_config):
    cfg = tiny_config
    frames = [make_frame(seed) for seed in range(3)]
    batch = preprocess_batch(frames, cfg)
    assert batch.batch_size == 3 and batch.camera.flags.c_contiguous
    for i, frame in enumerate(frames):
        single = preprocess_frame(frame, cfg)
        np.testing.assert_array_equal(batch.camera[i], single.camera[0])
        np.testing.assert_array_equal(batch.lidar[i], single.lidar[0])
        np.testing.assert_array_equal(batch.status[i], single.status[0])
    with pytest.raises(ValueError, match="no frames"):
        preprocess_batch([], cfg)


def test_preprocess_frame_rejects_wrong_camera_count(tiny_config):
    frame = make_frame(0)
    frame.cameras = frame.cameras[:2]
    with pytest.raises(ValueError, match="expected 3 cameras"):
        preprocess_frame(frame, tiny_config)
