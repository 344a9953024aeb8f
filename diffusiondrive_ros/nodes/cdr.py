"""Zero-copy readers of serialized (CDR) sensor_msgs/Image and sensor_msgs/PointCloud2.

The node subscribes to its large inputs with ``raw=True``: rclpy then hands over the serialized bytes instead of
building a Python message (a C struct copy plus an ``array.array`` copy of several MB). These readers parse the few
header fields with ``struct`` and expose ``data`` as a read-only numpy view into those bytes, so a 6 MB image is
never copied again before the camera crop/resize. The returned objects carry the same field names as the rclpy
messages, so :mod:`.converters` reads both alike.

Layout (OMG CDR as written by rmw_fastrtps, and XCDR2 for these final types): a 4-byte encapsulation header
(representation id, options), then the fields in declaration order, each aligned to its own size relative to the
end of the encapsulation header. Strings are a uint32 length (with the terminating NUL) and the bytes; sequences a
uint32 count and the elements. Neither message holds an 8-byte primitive, so XCDR1 and XCDR2 align alike.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .converters import MessageError

ENCAPSULATION_SIZE = 4
# representation id (first two bytes, big-endian) -> struct byte order; plain CDR and final-type XCDR2 only
REPRESENTATIONS: dict[bytes, str] = {
    b"\x00\x00": ">", b"\x00\x01": "<",  # CDR_BE, CDR_LE
    b"\x00\x06": ">", b"\x00\x07": "<",  # CDR2_BE, CDR2_LE
}


@dataclass(frozen=True)
class Time:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    stamp: Time
    frame_id: str


@dataclass(frozen=True)
class Image:
    """sensor_msgs/Image fields; ``data`` is a read-only uint8 view into the serialized bytes."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


@dataclass(frozen=True)
class PointField:
    name: str
    offset: int
    datatype: int
    count: int


@dataclass(frozen=True)
class PointCloud2:
    """sensor_msgs/PointCloud2 fields; ``data`` is a read-only uint8 view into the serialized bytes."""

    header: Header
    height: int
    width: int
    fields: tuple[PointField, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: np.ndarray
    is_dense: bool


class _Reader:
    """Sequential CDR reader over one serialized message; every read checks bounds."""

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        self.buffer = memoryview(buffer).cast("B") if not isinstance(buffer, bytes) else buffer
        if len(self.buffer) < ENCAPSULATION_SIZE:
            raise MessageError("malformed_cdr", f"{len(self.buffer)} bytes cannot hold a CDR encapsulation header")
        representation = bytes(self.buffer[:2])
        if representation not in REPRESENTATIONS:
            raise MessageError("malformed_cdr", f"unsupported CDR representation {representation.hex()}")
        self.order = REPRESENTATIONS[representation]
        self.position = ENCAPSULATION_SIZE

    def _take(self, size: int, align: int) -> int:
        body = self.position - ENCAPSULATION_SIZE
        start = self.position + (-body % align)
        end = start + size
        if size < 0 or end > len(self.buffer):
            raise MessageError("truncated", f"CDR message of {len(self.buffer)} bytes ends before byte {end}")
        self.position = end
        return start

    def uint8(self) -> int:
        return self.buffer[self._take(1, 1)]

    def uint32(self) -> int:
        return struct.unpack_from(self.order + "I", self.buffer, self._take(4, 4))[0]

    def int32(self) -> int:
        return struct.unpack_from(self.order + "i", self.buffer, self._take(4, 4))[0]

    def string(self) -> str:
        length = self.uint32()
        if length == 0:  # some writers omit the NUL of an empty string
            return ""
        start = self._take(length, 1)
        raw = bytes(self.buffer[start: start + length])
        if raw[-1:] != b"\x00":
            raise MessageError("malformed_cdr", "CDR string lacks its terminating NUL")
        return raw[:-1].decode("utf-8", errors="replace")

    def uint8_sequence(self) -> np.ndarray:
        count = self.uint32()
        start = self._take(count, 1)
        view = np.frombuffer(self.buffer, dtype=np.uint8, count=count, offset=start)
        view.flags.writeable = False
        return view

    def header(self) -> Header:
        stamp = Time(sec=self.int32(), nanosec=self.uint32())
        return Header(stamp=stamp, frame_id=self.string())


def parse_image(buffer: bytes | bytearray | memoryview) -> Image:
    """Serialized sensor_msgs/Image -> :class:`Image` (``data`` viewing ``buffer``)."""
    reader = _Reader(buffer)
    header = reader.header()
    height, width = reader.uint32(), reader.uint32()
    encoding = reader.string()
    is_bigendian = reader.uint8()
    step = reader.uint32()
    data = reader.uint8_sequence()
    return Image(header, height, width, encoding, is_bigendian, step, data)


def parse_point_cloud2(buffer: bytes | bytearray | memoryview) -> PointCloud2:
    """Serialized sensor_msgs/PointCloud2 -> :class:`PointCloud2` (``data`` viewing ``buffer``)."""
    reader = _Reader(buffer)
    header = reader.header()
    height, width = reader.uint32(), reader.uint32()
    field_count = reader.uint32()
    if field_count > (len(reader.buffer) - reader.position) // 13:  # name length, offset, datatype, count at least
        raise MessageError("malformed_cdr", f"{field_count} point fields cannot fit in the message")
    fields = tuple(PointField(name=reader.string(), offset=reader.uint32(), datatype=reader.uint8(),
                              count=reader.uint32()) for _ in range(field_count))
    is_bigendian = bool(reader.uint8())
    point_step, row_step = reader.uint32(), reader.uint32()
    data = reader.uint8_sequence()
    is_dense = bool(reader.uint8())
    return PointCloud2(header, height, width, fields, is_bigendian, point_step, row_step, data, is_dense)
