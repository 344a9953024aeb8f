"""Pure message <-> numpy converters for the planner node (no cv_bridge / sensor_msgs_py: the PyPI wheels lack them).

Readers take any object with the message's fields (a real rclpy message or a stand-in) and raise
:class:`MessageError` (a ValueError) naming what is wrong. Writers build real messages and fill ``uint8[]``
fields with ``ndarray.tobytes()``: assigning a numpy array element-wise is ~1000x slower for megabyte payloads.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header


class MessageError(ValueError):
    """A message that cannot be converted; ``reason`` is a short machine-readable tag counted in diagnostics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# -- time ------------------------------------------------------------------------------------------------------
def stamp_to_seconds(stamp) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot convert {seconds!r} s to a ROS time stamp (needs a finite value >= 0)")
    sec = int(math.floor(seconds))
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=sec, nanosec=nanosec)


def make_header(stamp_s: float, frame_id: str) -> Header:
    return Header(stamp=seconds_to_stamp(stamp_s), frame_id=frame_id)


# -- images ----------------------------------------------------------------------------------------------------
# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
IMAGE_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
}


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, honouring ``step`` (row padding).

    Unpadded rgb8 comes back as a read-only view of the message buffer (no copy); other encodings are copies.
    """
    encoding = str(msg.encoding).lower()
    if encoding not in IMAGE_ENCODINGS:
        raise MessageError("unsupported_encoding",
                           f"image encoding {msg.encoding!r}; supported: {list(IMAGE_ENCODINGS)}")
    channels, conversion = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageError("empty_image", f"image is {width}x{height}")
    if step < width * channels:
        raise MessageError("bad_step", f"step {step} < width {width} x {channels} bytes per pixel")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise MessageError("truncated", f"image data has {data.size} bytes, expected step x height = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def compressed_image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png/...) -> (H, W, 3) uint8 RGB."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise MessageError("empty_image", "compressed image has no data")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MessageError("undecodable", f"cannot decode {data.size} bytes of format {msg.format!r}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image_msg(rgb: np.ndarray, stamp_s: float = 0.0, frame_id: str = "", encoding: str = "rgb8",
                     row_padding: int = 0) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in ``encoding`` (``row_padding`` extra bytes per row, for tests)."""
    rgb = _check_rgb(rgb)
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: {list(IMAGE_ENCODINGS)}")
    pixels = {
        "rgb8": lambda a: a,
        "bgr8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGR),
        "rgba8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2RGBA),
        "bgra8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGRA),
        "mono8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY),
    }[encoding](rgb)
    height, width = rgb.shape[:2]
    rows = pixels.reshape(height, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    msg = Image(header=make_header(stamp_s, frame_id), height=height, width=width, encoding=encoding,
                is_bigendian=0, step=rows.shape[1])
    msg.data = np.ascontiguousarray(rows).tobytes()
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, stamp_s: float = 0.0, frame_id: str = "", fmt: str = "jpeg",
                          quality: int = 90) -> CompressedImage:
    rgb = _check_rgb(rgb)
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"unsupported compressed format {fmt!r}; use jpeg or png")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cv2.imencode failed for a {rgb.shape} image as {fmt}")
    msg = CompressedImage(header=make_header(stamp_s, frame_id), format=fmt)
    msg.data = encoded.tobytes()
    return msg


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


# -- point clouds ----------------------------------------------------------------------------------------------
_POINT_FIELD_DTYPES = {
    PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
    PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8",
}
_XYZ = ("x", "y", "z")


def cloud_to_xyz(msg, keep_non_finite: bool = False) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> (N, 3) float32 x, y, z with non-finite points dropped (unless ``keep_non_finite``:
    the node filters and counts them with :func:`.plausibility.filter_points`).

    Any field layout works as long as x, y, z are FLOAT32 (or FLOAT64) scalars; other fields are ignored.
    ``is_bigendian``, ``point_step`` and ``row_step`` (row padding) are honoured.
    """
    fields = {f.name: f for f in msg.fields}
    missing = [name for name in _XYZ if name not in fields]
    if missing:
        raise MessageError("missing_fields", f"point cloud lacks field(s) {missing}; has {sorted(fields)}")
    order = ">" if msg.is_bigendian else "<"
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    width, height = int(msg.width), int(msg.height)
    names, formats, offsets = [], [], []
    for name in _XYZ:
        field = fields[name]
        if field.datatype not in (PointField.FLOAT32, PointField.FLOAT64) or field.count != 1:
            raise MessageError("bad_field", f"field {name!r} must be one FLOAT32/FLOAT64 (datatype "
                               f"{field.datatype}, count {field.count})")
        code = _POINT_FIELD_DTYPES[field.datatype]
        if field.offset + int(code[1]) > point_step:
            raise MessageError("bad_field", f"field {name!r} at offset {field.offset} overruns point_step {point_step}")
        names.append(name)
        formats.append(order + code)
        offsets.append(int(field.offset))
    if width * height == 0:
        return np.zeros((0, 3), np.float32)
    if row_step < width * point_step:
        raise MessageError("bad_step", f"row_step {row_step} < width {width} x point_step {point_step}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < row_step * height:
        raise MessageError("truncated", f"cloud data has {data.size} bytes, expected row_step x height = "
                           f"{row_step * height}")
    rows = data[: row_step * height].reshape(height, row_step)[:, : width * point_step]
    point_dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    points = np.ascontiguousarray(rows).view(point_dtype).reshape(-1)  # a view unless rows are padded
    xyz = np.empty((points.shape[0], 3), np.float32)
    for column, name in enumerate(_XYZ):  # one strided copy per field (3x faster than astype + stack)
        xyz[:, column] = points[name]
    if keep_non_finite or np.isfinite(xyz).all():  # the common case: one flat reduction, no per-row mask
        return xyz
    return xyz[np.isfinite(xyz).all(axis=1)]


def xyz_to_cloud_msg(points: np.ndarray, stamp_s: float = 0.0, frame_id: str = "", intensity: bool = False,
                     big_endian: bool = False) -> PointCloud2:
    """(N, 3) float x, y, z -> an unorganised PointCloud2 (float32 x, y, z [, intensity]) using tobytes()."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected (N, 3) points, got {points.shape}")
    names = ["x", "y", "z"] + (["intensity"] if intensity else [])
    order = ">" if big_endian else "<"
    dtype = np.dtype([(n, order + "f4") for n in names])
    packed = np.zeros(len(points), dtype)
    for i, name in enumerate(_XYZ):
        packed[name] = points[:, i]
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
    msg = PointCloud2(header=make_header(stamp_s, frame_id), height=1, width=len(points), fields=fields,
                      is_bigendian=big_endian, point_step=dtype.itemsize, row_step=dtype.itemsize * len(points),
                      is_dense=bool(np.isfinite(points).all()))
    msg.data = packed.tobytes()
    return msg


# -- odometry --------------------------------------------------------------------------------------------------
def odometry_to_velocity(msg) -> tuple[float, float]:
    """nav_msgs/Odometry -> (vx, vy) [m/s]: twist.linear is expressed in child_frame_id, the ego frame."""
    linear = msg.twist.twist.linear
    vx, vy = float(linear.x), float(linear.y)
    if not (math.isfinite(vx) and math.isfinite(vy)):
        raise MessageError("non_finite", f"odometry velocity ({vx}, {vy}) is not finite")
    return vx, vy


def odometry_to_twist(msg) -> tuple[float, float, float]:
    """nav_msgs/Odometry -> (vx, vy, yaw rate) as floats, unchecked (see :func:`.plausibility.check_twist`)."""
    twist = msg.twist.twist
    return float(twist.linear.x), float(twist.linear.y), float(twist.angular.z)


def odometry_msg(vx: float, vy: float = 0.0, stamp_s: float = 0.0, frame_id: str = "odom",
                 child_frame_id: str = "base_link", yaw_rate: float = 0.0) -> Odometry:
    msg = Odometry(header=make_header(stamp_s, frame_id), child_frame_id=child_frame_id)
    msg.twist.twist.linear.x = float(vx)
    msg.twist.twist.linear.y = float(vy)
    msg.twist.twist.angular.z = float(yaw_rate)
    return msg


# -- trajectories ----------------------------------------------------------------------------------------------
def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``yaw`` about z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def trajectory_to_path(trajectory: np.ndarray, times: np.ndarray, stamp_s: float, frame_id: str) -> Path:
    """(K, 3) x, y, heading in ``frame_id`` at ``stamp_s + times[k]`` -> nav_msgs/Path (header stamp = frame stamp)."""
    trajectory = np.asarray(trajectory, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if trajectory.ndim != 2 or trajectory.shape[1] != 3 or times.shape != (trajectory.shape[0],):
        raise ValueError(f"expected (K, 3) poses and (K,) times, got {trajectory.shape} and {times.shape}")
    if not np.isfinite(trajectory).all():
        raise ValueError("refusing to build a Path from a non-finite trajectory")
    path = Path(header=make_header(stamp_s, frame_id))
    for (x, y, yaw), t in zip(trajectory, times):
        pose = PoseStamped(header=make_header(stamp_s + float(t), frame_id))
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        qx, qy, qz, qw = yaw_to_quaternion(float(yaw))
        pose.pose.orientation.x, pose.pose.orientation.y = qx, qy
        pose.pose.orientation.z, pose.pose.orientation.w = qz, qw
        path.poses.append(pose)
    return path


def path_to_trajectory(path) -> tuple[np.ndarray, np.ndarray]:
    """nav_msgs/Path -> ((K, 3) x, y, heading; (K,) pose stamps in seconds)."""
    poses = np.array([[p.pose.position.x, p.pose.position.y,
                       quaternion_to_yaw(p.pose.orientation.x, p.pose.orientation.y,
                                         p.pose.orientation.z, p.pose.orientation.w)] for p in path.poses],
                     dtype=np.float64).reshape(-1, 3)
    stamps = np.array([stamp_to_seconds(p.header.stamp) for p in path.poses], dtype=np.float64)
    return poses, stamps


# -- extrinsics ------------------------------------------------------------------------------------------------
def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation R = Rz(yaw) Ry(pitch) Rx(roll) (the ROS/URDF fixed-axis roll-pitch-yaw convention)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def sensor_to_ego(points: np.ndarray, extrinsic_xyzrpy) -> np.ndarray:
    """(N, 3) points in the sensor frame -> the ego frame, given the sensor pose (x, y, z, roll, pitch, yaw) in it."""
    x, y, z, roll, pitch, yaw = (float(v) for v in extrinsic_xyzrpy)
    if x == y == z == roll == pitch == yaw == 0.0:
        return points
    rot = rpy_to_matrix(roll, pitch, yaw).astype(np.float32)
    return points @ rot.T + np.array([x, y, z], dtype=np.float32)
