"""Minimal reader/writer of PCD point-cloud files (the format of OpenScene/nuPlan LiDAR sweeps).

Reads DATA ascii, binary and binary_compressed (LZF, decoded in pure Python: correct but slow for large sweeps);
writes ascii or binary. Points come back as a structured-free (N, F) float32 array plus the field names.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_TYPES = {("F", 4): np.float32, ("F", 8): np.float64, ("I", 1): np.int8, ("I", 2): np.int16, ("I", 4): np.int32,
          ("I", 8): np.int64, ("U", 1): np.uint8, ("U", 2): np.uint16, ("U", 4): np.uint32, ("U", 8): np.uint64}
OPENSCENE_FIELDS = ("x", "y", "z", "intensity", "ring", "lidar_info")


class PcdError(ValueError):
    """A PCD file is malformed or uses a feature this reader does not support."""


def lzf_decompress(data: bytes, expected_size: int) -> bytes:
    """Decode an LZF stream (liblzf format: literal runs and back-references)."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            end = i + ctrl + 1
            if end > n:
                raise PcdError("LZF literal run past the end of the data")
            out += data[i:end]
            i = end
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise PcdError("LZF back-reference before the start of the output")
        for _ in range(length + 2):  # byte by byte: the source may overlap the bytes being written
            out.append(out[ref])
            ref += 1
    if len(out) != expected_size:
        raise PcdError(f"LZF data decoded to {len(out)} bytes, header says {expected_size}")
    return bytes(out)


def _parse_header(blob: bytes) -> tuple[dict[str, list[str]], int]:
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise PcdError("PCD header ends before its DATA line")
        line = blob[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            return header, pos


def read_pcd(source: str | os.PathLike | bytes) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a PCD file (path or bytes): returns points (N, F) float32 and the field names (COUNT 1 fields only)."""
    blob = source if isinstance(source, bytes) else Path(source).read_bytes()
    header, offset = _parse_header(blob)
    try:
        fields = tuple(header["FIELDS"])
        sizes = [int(v) for v in header["SIZE"]]
        types = header["TYPE"]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        mode = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as exc:
        raise PcdError(f"bad PCD header: {exc}") from exc
    if any(c != 1 for c in counts) or not (len(fields) == len(sizes) == len(types)):
        raise PcdError("PCD fields with COUNT != 1 or mismatched FIELDS/SIZE/TYPE are not supported")
    try:
        dtypes = [np.dtype(_TYPES[(t.upper(), s)]).newbyteorder("<") for t, s in zip(types, sizes)]
    except KeyError as exc:
        raise PcdError(f"unsupported PCD field type {exc}") from exc
    body = blob[offset:]
    if mode == "ascii":
        values = np.loadtxt(body.decode("ascii").splitlines(), dtype=np.float64, ndmin=2) if n else np.zeros((0, 1))
        points = values.reshape(n, len(fields))
    elif mode == "binary":
        record = np.dtype([(f"f{i}", d) for i, d in enumerate(dtypes)])
        if len(body) < n * record.itemsize:
            raise PcdError(f"PCD binary body has {len(body)} bytes, {n} points need {n * record.itemsize}")
        table = np.frombuffer(body, dtype=record, count=n)
        points = np.column_stack([table[f"f{i}"].astype(np.float64) for i in range(len(fields))]) if n else None
    elif mode == "binary_compressed":
        compressed, raw_size = struct.unpack("<II", body[:8])
        raw = lzf_decompress(body[8 : 8 + compressed], raw_size)
        columns, pos = [], 0
        for d in dtypes:  # column-major: every field's values stored together
            columns.append(np.frombuffer(raw, dtype=d, count=n, offset=pos).astype(np.float64))
            pos += n * d.itemsize
        points = np.column_stack(columns) if n else None
    else:
        raise PcdError(f"unsupported PCD DATA mode {mode!r}")
    if points is None:
        points = np.zeros((0, len(fields)))
    return np.ascontiguousarray(points, dtype=np.float32), fields


def write_pcd(
    path: str | os.PathLike,
    points: np.ndarray,
    fields: Sequence[str] = OPENSCENE_FIELDS,
    binary: bool = True,
) -> None:
    """Write (N, F) points as a float32 PCD v0.7 file (DATA binary or ascii)."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != len(fields):
        raise ValueError(f"points have shape {points.shape}, expected (N, {len(fields)}) for fields {tuple(fields)}")
    n, f = points.shape
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        "FIELDS " + " ".join(fields),
        "SIZE " + " ".join(["4"] * f),
        "TYPE " + " ".join(["F"] * f),
        "COUNT " + " ".join(["1"] * f),
        f"WIDTH {n}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {n}",
        f"DATA {'binary' if binary else 'ascii'}",
    ]) + "\n"
    with open(path, "wb") as out:
        out.write(header.encode("ascii"))
        if binary:
            out.write(points.astype("<f4").tobytes())
        else:
            out.write("".join(" ".join(repr(float(v)) for v in row) + "\n" for row in points).encode("ascii"))
