"""The raw-CDR readers against messages serialized by rclpy itself (the bytes a ``raw=True`` subscription gets)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2, PointField  # noqa: E402

from diffusiondrive_ros.nodes import cdr, converters  # noqa: E402

pytestmark = pytest.mark.ros


def _assert_header(parsed, msg) -> None:
    assert (parsed.header.stamp.sec, parsed.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    assert parsed.header.frame_id == msg.header.frame_id


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(sec=st.integers(-2**31, 2**31 - 1), nanosec=st.integers(0, 2**32 - 1), frame_id=st.text(max_size=12),
       height=st.integers(0, 2**32 - 1), width=st.integers(0, 2**32 - 1), encoding=st.text(max_size=9),
       is_bigendian=st.integers(0, 255), step=st.integers(0, 2**32 - 1), data=st.binary(max_size=70))
def test_image_fields_match_rclpy(sec, nanosec, frame_id, height, width, encoding, is_bigendian, step, data):
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=is_bigendian, step=step)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    msg.data = data
    parsed = cdr.parse_image(serialize_message(msg))
    _assert_header(parsed, msg)
    assert (parsed.height, parsed.width, parsed.encoding, parsed.is_bigendian, parsed.step) == (
        height, width, encoding, is_bigendian, step)
    assert parsed.data.tobytes() == data


FIELD_NAMES = st.text(alphabet="xyzirngtme_", max_size=10)


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(frame_id=st.text(max_size=7), height=st.integers(0, 2**32 - 1), width=st.integers(0, 2**32 - 1),
       fields=st.lists(st.tuples(FIELD_NAMES, st.integers(0, 2**32 - 1), st.integers(0, 255),
                                 st.integers(0, 2**32 - 1)), max_size=5),
       is_bigendian=st.booleans(), point_step=st.integers(0, 2**32 - 1), row_step=st.integers(0, 2**32 - 1),
       data=st.binary(max_size=70), is_dense=st.booleans())
def test_point_cloud_fields_match_rclpy(frame_id, height, width, fields, is_bigendian, point_step, row_step, data,
                                        is_dense):
    msg = PointCloud2(height=height, width=width, is_bigendian=is_bigendian, point_step=point_step,
                      row_step=row_step, is_dense=is_dense,
                      fields=[PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields])
    msg.header.stamp.sec, msg.header.frame_id = 1234, frame_id
    msg.data = data
    parsed = cdr.parse_point_cloud2(serialize_message(msg))
    _assert_header(parsed, msg)
    assert (parsed.height, parsed.width, parsed.is_bigendian, parsed.point_step, parsed.row_step,
            parsed.is_dense) == (height, width, is_bigendian, point_step, row_step, is_dense)
    assert [(f.name, f.offset, f.datatype, f.count) for f in parsed.fields] == fields
    assert parsed.data.tobytes() == data


def test_full_size_image_is_a_read_only_view_of_the_bytes_and_converts_like_the_message():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    msg = converters.rgb_to_image_msg(rgb, 12.5, "camera_front")
    buffer = serialize_message(msg)
    parsed = cdr.parse_image(buffer)
    assert np.shares_memory(parsed.data, np.frombuffer(buffer, np.uint8)) and not parsed.data.flags.writeable
    image = converters.image_to_rgb(parsed)
    np.testing.assert_array_equal(image, rgb)
    assert converters.stamp_to_seconds(parsed.header.stamp) == 12.5
    padded = converters.rgb_to_image_msg(rgb[:40, :60], encoding="bgr8", row_padding=7)
    np.testing.assert_array_equal(converters.image_to_rgb(cdr.parse_image(serialize_message(padded))), rgb[:40, :60])


def test_cloud_converts_like_the_message():
    rng = np.random.default_rng(1)
    points = rng.uniform(-50, 50, (100_000, 3)).astype(np.float32)
    points[::1000] = np.nan  # non-finite points are dropped either way
    for big_endian in (False, True):
        msg = converters.xyz_to_cloud_msg(points, 3.25, "lidar", intensity=True, big_endian=big_endian)
        parsed = cdr.parse_point_cloud2(serialize_message(msg))
        np.testing.assert_array_equal(converters.cloud_to_xyz(parsed), converters.cloud_to_xyz(msg))
        assert converters.cloud_to_xyz(parsed).shape == (99_900, 3)


def test_bad_bytes_raise_message_errors():
    buffer = serialize_message(converters.rgb_to_image_msg(np.zeros((4, 6, 3), np.uint8), 1.0, "cam"))
    for cut in (0, 3, 8, 20, len(buffer) - 1):
        with pytest.raises(converters.MessageError, match="truncated|malformed_cdr"):
            cdr.parse_image(buffer[:cut])
    with pytest.raises(converters.MessageError, match="representation"):
        cdr.parse_image(b"\x00\x0f\x00\x00" + buffer[4:])
    cloud = serialize_message(converters.xyz_to_cloud_msg(np.zeros((3, 3), np.float32), 1.0, "lidar"))
    with pytest.raises(converters.MessageError, match="truncated|malformed_cdr"):
        cdr.parse_point_cloud2(cloud[:-5])
    # A field count far beyond the message size is refused before anything is allocated.
    count_offset = 4 + 8 + 4 + len(b"lidar\x00") + 2 + 8  # encapsulation, stamp, frame_id (+pad), height, width
    huge = bytearray(cloud)
    huge[count_offset:count_offset + 4] = (2**31).to_bytes(4, "little")
    with pytest.raises(converters.MessageError, match="point fields"):
        cdr.parse_point_cloud2(bytes(huge))
    with pytest.raises(converters.MessageError, match="NUL"):
        cdr.parse_image(buffer.replace(b"cam\x00", b"camX"))
