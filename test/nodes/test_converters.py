"""Unit tests of the message <-> numpy converters and the candidate messages (no DDS, real message classes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from sensor_msgs.msg import Image, PointCloud2, PointField  # noqa: E402

from diffusiondrive_ros.nodes import converters as cv  # noqa: E402
from diffusiondrive_ros.nodes.plan_messages import (  # noqa: E402
    candidates_from_array,
    candidates_to_array,
    candidates_to_markers,
)

pytestmark = pytest.mark.ros
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (27, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("padding", [0, 5])
def test_colour_image_round_trip(encoding, padding):
    msg = cv.rgb_to_image_msg(RGB, 12.25, "cam", encoding=encoding, row_padding=padding)
    assert msg.step == RGB.shape[1] * (4 if "a" in encoding else 3) + padding
    np.testing.assert_array_equal(cv.image_to_rgb(msg), RGB)
    assert cv.stamp_to_seconds(msg.header.stamp) == 12.25


def test_mono_image_becomes_three_equal_channels():
    grey = RNG.integers(0, 256, (10, 16), dtype=np.uint8)
    msg = Image(height=10, width=16, encoding="mono8", step=19)
    msg.data = np.concatenate([grey, np.zeros((10, 3), np.uint8)], 1).tobytes()
    out = cv.image_to_rgb(msg)
    assert out.shape == (10, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


@pytest.mark.parametrize(("change", "reason"), [
    ({"encoding": "yuv422"}, "unsupported_encoding"),
    ({"step": 10}, "bad_step"),
    ({"height": 0}, "empty_image"),
    ({"data": b"\x00" * 100}, "truncated"),
])
def test_malformed_images_raise_with_a_reason(change, reason):
    msg = cv.rgb_to_image_msg(RGB)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(cv.MessageError) as info:
        cv.image_to_rgb(msg)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_compressed_round_trip_png_exact_jpeg_close():
    np.testing.assert_array_equal(cv.compressed_image_to_rgb(cv.rgb_to_compressed_msg(RGB, fmt="png")), RGB)
    smooth = np.repeat(np.linspace(0, 255, 48, dtype=np.uint8)[None, :, None], 27, 0).repeat(3, 2)
    jpeg = cv.compressed_image_to_rgb(cv.rgb_to_compressed_msg(smooth, fmt="jpeg", quality=95))
    assert np.abs(jpeg.astype(int) - smooth).mean() < 3


def test_undecodable_compressed_image():
    msg = cv.rgb_to_compressed_msg(RGB)
    msg.data = b"not an image at all"
    with pytest.raises(cv.MessageError, match="undecodable"):
        cv.compressed_image_to_rgb(msg)


@pytest.mark.parametrize("big_endian", [False, True])
def test_cloud_round_trip_drops_nan(big_endian):
    points = RNG.normal(size=(100, 3)).astype(np.float32)
    points[5] = np.nan
    out = cv.cloud_to_xyz(cv.xyz_to_cloud_msg(points, intensity=True, big_endian=big_endian))
    np.testing.assert_array_equal(out, np.delete(points, 5, axis=0))


def test_cloud_with_foreign_layout_padding_and_float64():
    """Fields in another order, a uint16 ring, float64 z, point padding and row padding: all honoured."""
    n_rows, n_cols = 3, 4
    dtype = np.dtype({"names": ["ring", "y", "x", "z"], "formats": ["<u2", "<f4", "<f4", "<f8"],
                      "offsets": [0, 4, 8, 16], "itemsize": 32})
    packed = np.zeros((n_rows, n_cols), dtype)
    xyz = RNG.normal(size=(n_rows, n_cols, 3))
    packed["x"], packed["y"], packed["z"] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    row_step = 32 * n_cols + 8
    rows = np.zeros((n_rows, row_step), np.uint8)
    rows[:, : 32 * n_cols] = packed.view(np.uint8).reshape(n_rows, -1)
    fields = [PointField(name="ring", offset=0, datatype=PointField.UINT16, count=1),
              PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
              PointField(name="x", offset=8, datatype=PointField.FLOAT32, count=1),
              PointField(name="z", offset=16, datatype=PointField.FLOAT64, count=1)]
    msg = PointCloud2(height=n_rows, width=n_cols, fields=fields, point_step=32, row_step=row_step)
    msg.data = rows.tobytes()
    np.testing.assert_allclose(cv.cloud_to_xyz(msg), xyz.reshape(-1, 3).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize(("change", "reason"), [
    ({"fields": "drop_z"}, "missing_fields"),
    ({"point_step": 8}, "bad_field"),
    ({"row_step": 4}, "bad_step"),
    ({"data": b"\x00" * 7}, "truncated"),
    ({"fields": "int_x"}, "bad_field"),
])
def test_malformed_clouds_raise_with_a_reason(change, reason):
    msg = cv.xyz_to_cloud_msg(RNG.normal(size=(10, 3)))
    for key, value in change.items():
        if value == "drop_z":
            value = [f for f in msg.fields if f.name != "z"]
        elif value == "int_x":
            value = [PointField(name="x", offset=0, datatype=PointField.INT32, count=1), *msg.fields[1:]]
        setattr(msg, key, value)
    with pytest.raises(cv.MessageError) as info:
        cv.cloud_to_xyz(msg)
    assert info.value.reason == reason


def test_empty_cloud_is_empty_array():
    assert cv.cloud_to_xyz(cv.xyz_to_cloud_msg(np.zeros((0, 3)))).shape == (0, 3)


def test_odometry_velocity_and_non_finite():
    assert cv.odometry_to_velocity(cv.odometry_msg(3.5, -0.25)) == (3.5, -0.25)
    with pytest.raises(cv.MessageError, match="non_finite"):
        cv.odometry_to_velocity(cv.odometry_msg(float("nan"), 0.0))


def test_stamp_conversion_round_trip_and_rejects_negative():
    for seconds in (0.0, 1.5, 1_700_000_000.123456789, 2.9999999999):
        assert abs(cv.stamp_to_seconds(cv.seconds_to_stamp(seconds)) - seconds) < 1e-6
    with pytest.raises(ValueError):
        cv.seconds_to_stamp(-1.0)


def test_path_round_trip_and_refuses_nan():
    traj = np.stack([np.arange(1, 9) * 2.0, np.linspace(0, 1, 8), np.linspace(-3, 3, 8)], 1)
    times = 0.5 * np.arange(1, 9)
    path = cv.trajectory_to_path(traj, times, 100.0, "base_link")
    poses, stamps = cv.path_to_trajectory(path)
    np.testing.assert_allclose(poses, traj, atol=1e-12)
    np.testing.assert_allclose(stamps, 100.0 + times)
    traj[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        cv.trajectory_to_path(traj, times, 100.0, "base_link")


def test_sensor_to_ego_applies_rpy_then_translation():
    points = np.array([[1.0, 0.0, 0.0]], np.float32)
    out = cv.sensor_to_ego(points, [1.0, 2.0, 3.0, 0.0, 0.0, math.pi / 2])
    np.testing.assert_allclose(out, [[1.0, 3.0, 3.0]], atol=1e-6)
    rot = cv.rpy_to_matrix(0.3, -0.2, 1.1)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert cv.sensor_to_ego(points, [0] * 6) is points


def test_candidates_array_round_trip_and_markers():
    modes = RNG.normal(size=(20, 8, 3)).astype(np.float32)
    scores = RNG.uniform(size=20).astype(np.float32)
    back_modes, back_scores = candidates_from_array(candidates_to_array(modes, scores))
    np.testing.assert_array_equal(back_modes, modes)
    np.testing.assert_array_equal(back_scores, scores)
    markers = candidates_to_markers(modes, scores, 5.0, "base_link").markers
    assert len(markers) == 20 and all(len(m.points) == 9 for m in markers)
    best = int(np.argmax(scores))
    assert markers[best].color.g == pytest.approx(1.0) and markers[best].color.a == pytest.approx(1.0)
    with pytest.raises(ValueError):
        candidates_to_array(modes[..., :2], scores)
