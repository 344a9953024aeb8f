"""The TensorRT engine cache layer, with fake build/deserialize functions (no TensorRT needed)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from diffusiondrive_ros.runtime.backends.engine_cache import (
    EngineCache,
    EngineCacheError,
    EngineKey,
    atomic_write_bytes,
    file_lock,
    get_or_build,
    onnx_fingerprint,
)

KEY_FIELDS = {"trt_version": "10.9.0", "gpu_name": "NVIDIA H200", "compute_capability": (9, 0), "precision": "fp16"}


class FakeBuilder:
    """Counts builds; the "engine" is the bytes with a magic prefix, "deserializing" checks the prefix."""

    def __init__(self, payload: bytes = b"ENGINE:v1:" + bytes(range(256)) * 8) -> None:
        self.payload = payload
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return self.payload

    @staticmethod
    def deserialize(data: bytes) -> dict:
        if not data.startswith(b"ENGINE:"):
            raise RuntimeError("not an engine")
        return {"engine": data}


@pytest.fixture()
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"fake onnx graph " * 100)
    return path


@pytest.fixture()
def key(onnx_file: Path) -> EngineKey:
    return EngineKey.create(onnx_file, **KEY_FIELDS)


def test_key_depends_on_every_field(onnx_file: Path, tmp_path: Path) -> None:
    base = EngineKey.create(onnx_file, **KEY_FIELDS)
    assert base == EngineKey.create(onnx_file, **KEY_FIELDS)
    assert base.compute_capability == "9.0"
    assert len(base.digest) == 32
    variants = [
        {**KEY_FIELDS, "trt_version": "11.0.0"},
        {**KEY_FIELDS, "gpu_name": "NVIDIA A100"},
        {**KEY_FIELDS, "compute_capability": "8.0"},
        {**KEY_FIELDS, "precision": "fp32"},
        {**KEY_FIELDS, "builder_options": {"workspace_gb": 4}},
    ]
    digests = {EngineKey.create(onnx_file, **v).digest for v in variants}
    assert base.digest not in digests and len(digests) == len(variants)
    other = tmp_path / "other.onnx"
    other.write_bytes(onnx_file.read_bytes() + b"x")
    assert EngineKey.create(other, **KEY_FIELDS).digest != base.digest
    # Builder options are canonical: key order does not matter.
    a = EngineKey.create(onnx_file, **KEY_FIELDS, builder_options={"a": 1, "b": 2})
    b = EngineKey.create(onnx_file, **KEY_FIELDS, builder_options={"b": 2, "a": 1})
    assert a == b


def test_onnx_fingerprint_includes_external_data(onnx_file: Path) -> None:
    before = onnx_fingerprint(onnx_file)
    (onnx_file.parent / "model.onnx.data").write_bytes(b"weights")
    assert onnx_fingerprint(onnx_file) != before
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        onnx_fingerprint(onnx_file.parent / "absent.onnx")


def test_key_rejects_empty_fields(onnx_file: Path) -> None:
    with pytest.raises(ValueError, match="gpu_name"):
        EngineKey.create(onnx_file, **{**KEY_FIELDS, "gpu_name": ""})


def test_miss_builds_then_hit_loads(tmp_path: Path, key: EngineKey) -> None:
    cache, fake = EngineCache(tmp_path / "cache"), FakeBuilder()
    first = cache.get_or_build(key, fake.build, fake.deserialize)
    assert first.built and first.reason == "missing" and fake.builds == 1
    assert first.path == tmp_path / "cache" / f"{key.digest}.engine"
    meta = json.loads(cache.sidecar_path(key).read_text())
    assert meta["key"]["gpu_name"] == "NVIDIA H200" and meta["engine_bytes"] == len(fake.payload)
    assert len(meta["engine_sha256"]) == 64 and "created" in meta and "build_s" in meta
    second = cache.get_or_build(key, fake.build, fake.deserialize)
    assert not second.built and second.reason == "hit" and fake.builds == 1
    assert second.engine == {"engine": fake.payload}
    assert [m["digest"] for m in cache.entries()] == [key.digest]


def test_module_level_get_or_build(tmp_path: Path, onnx_file: Path) -> None:
    fake = FakeBuilder()
    for expected_builds in (1, 1):
        got = get_or_build(onnx_file, fake.build, fake.deserialize, cache_dir=tmp_path / "c", **KEY_FIELDS)
        assert fake.builds == expected_builds and got.engine["engine"] == fake.payload


def _corrupt_truncate(cache: EngineCache, key: EngineKey) -> None:
    data = cache.engine_path(key).read_bytes()
    cache.engine_path(key).write_bytes(data[: len(data) // 2])


def _corrupt_flip(cache: EngineCache, key: EngineKey) -> None:
    data = bytearray(cache.engine_path(key).read_bytes())
    data[-1] ^= 0xFF
    cache.engine_path(key).write_bytes(bytes(data))


def _corrupt_sidecar(cache: EngineCache, key: EngineKey) -> None:
    cache.sidecar_path(key).write_text("{not json")


def _drop_sidecar(cache: EngineCache, key: EngineKey) -> None:
    cache.sidecar_path(key).unlink()


def _stale_sidecar(cache: EngineCache, key: EngineKey) -> None:
    meta = json.loads(cache.sidecar_path(key).read_text())
    meta["key"]["trt_version"] = "8.6.1"
    cache.sidecar_path(key).write_text(json.dumps(meta))


def _drop_engine(cache: EngineCache, key: EngineKey) -> None:
    cache.engine_path(key).unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt_truncate, "corrupt"),
        (_corrupt_flip, "corrupt"),
        (_corrupt_sidecar, "corrupt"),
        (_drop_sidecar, "corrupt"),
        (_stale_sidecar, "stale"),
        (_drop_engine, "corrupt"),
    ],
)
def test_damaged_entry_is_rebuilt_with_a_log_line(
    tmp_path: Path, key: EngineKey, damage, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, fake = EngineCache(tmp_path), FakeBuilder()
    cache.get_or_build(key, fake.build, fake.deserialize)
    damage(cache, key)
    with caplog.at_level(logging.INFO, logger="diffusiondrive_ros.runtime.backends.engine_cache"):
        again = cache.get_or_build(key, fake.build, fake.deserialize)
    assert again.built and again.reason == reason and fake.builds == 2
    assert "rebuilding" in caplog.text
    assert cache.check(key)[0] == "hit"  # the repaired entry is valid again


def test_deserialize_failure_of_cached_engine_triggers_rebuild(tmp_path: Path, key: EngineKey) -> None:
    cache = EngineCache(tmp_path)
    # A valid entry (hash matches) whose bytes the runtime refuses, e.g. built by an incompatible TensorRT.
    cache.store(key, b"GARBAGE-not-an-engine")
    fake = FakeBuilder()
    got = cache.get_or_build(key, fake.build, fake.deserialize)
    assert got.built and got.reason == "corrupt" and fake.builds == 1

    # A deserializer that returns None (TensorRT's way of failing) counts the same: it fails the check before and
    # under the lock, then loads the fresh build.
    calls = []

    def none_then_ok(data: bytes):
        calls.append(1)
        return None if len(calls) <= 2 else data

    got = cache.get_or_build(key, fake.build, none_then_ok)
    assert got.built and fake.builds == 2


def test_fresh_build_that_cannot_deserialize_raises_clearly(tmp_path: Path, key: EngineKey) -> None:
    cache = EngineCache(tmp_path)
    with pytest.raises(EngineCacheError, match="freshly built engine"):
        cache.get_or_build(key, lambda: b"GARBAGE", FakeBuilder.deserialize)
    with pytest.raises(EngineCacheError, match="no bytes"):
        cache.get_or_build(key, lambda: b"", FakeBuilder.deserialize)


def test_build_error_propagates_and_leaves_no_entry(tmp_path: Path, key: EngineKey) -> None:
    cache = EngineCache(tmp_path)

    def broken() -> bytes:
        raise RuntimeError("parser failed")

    with pytest.raises(RuntimeError, match="parser failed"):
        cache.get_or_build(key, broken, FakeBuilder.deserialize)
    assert cache.check(key)[0] == "missing"


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_lock_times_out(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with file_lock(lock):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert entered.wait(5)
        with pytest.raises(EngineCacheError, match="timed out"), file_lock(lock, timeout_s=0.2):
            pass
    finally:
        release.set()
        thread.join()
    with file_lock(lock, timeout_s=1):  # free again
        pass


def test_prune_keeps_newest(tmp_path: Path, onnx_file: Path) -> None:
    cache = EngineCache(tmp_path / "c")
    keys = [EngineKey.create(onnx_file, **{**KEY_FIELDS, "precision": p}) for p in ("fp32", "fp16", "int8")]
    for i, k in enumerate(keys):
        cache.store(k, b"ENGINE:" + bytes([i]))
    removed = cache.prune(keep=1)
    assert len(removed) == 2 and len(cache.entries()) == 1
    with pytest.raises(ValueError, match="keep"):
        cache.prune(-1)


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from diffusiondrive_ros.runtime.backends.engine_cache import get_or_build

    onnx, cache_dir, log = sys.argv[1:4]

    def build():
        with open(log, "a") as f:
            f.write("build\\n")
        time.sleep(0.6)
        return b"ENGINE:" + b"x" * 4096

    got = get_or_build(onnx, build, lambda b: b if b.startswith(b"ENGINE:") else None, cache_dir=cache_dir,
                       trt_version="10.9", gpu_name="gpu", compute_capability="9.0", precision="fp16")
    print("built" if got.built else "loaded")
    """
)


def test_two_processes_build_once(tmp_path: Path, onnx_file: Path, repo_root: Path) -> None:
    log_file = tmp_path / "builds.log"
    env = {**os.environ, "PYTHONPATH": f"{repo_root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [sys.executable, "-c", _WORKER, str(onnx_file), str(tmp_path / "cache"), str(log_file)]
    procs = [subprocess.Popen(args, cwd=repo_root, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert log_file.read_text().count("build") == 1
    assert sorted(outputs) == ["built", "loaded"]
