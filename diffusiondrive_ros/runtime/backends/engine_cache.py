"""On-disk cache of serialized TensorRT engines, keyed by everything an engine depends on.

A TensorRT engine only runs on the TensorRT version and GPU architecture it was built for, and building one takes
minutes. The cache stores ``<key>.engine`` plus a ``<key>.json`` sidecar (key fields, sizes, sha256 of the engine
bytes). A missing, stale or corrupt entry is rebuilt with a log line instead of failing; writes are atomic (temp file
+ rename) and a per-key file lock keeps two processes from building the same engine at once.

Pure Python (stdlib only, no TensorRT, no numpy) so that every path is testable with fake build/deserialize functions.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ...files import atomic_write_bytes, file_sha256  # noqa: F401 - atomic_write_bytes: part of this API

log = logging.getLogger(__name__)

T = TypeVar("T")

ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"
SIDECAR_FORMAT = 1


class EngineCacheError(RuntimeError):
    """The cache cannot produce a usable engine (a fresh build failed to deserialize, or the lock timed out)."""


def onnx_fingerprint(onnx_path: str | os.PathLike) -> str:
    """sha256 of an ONNX model: the graph file plus its ``<file>.data`` external-weights file when there is one."""
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    parts = [file_sha256(path)]
    external = path.with_name(path.name + ".data")
    if external.is_file():
        parts.append(file_sha256(external))
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on. Two keys are equal exactly when an engine can be reused."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str  # "fp32", "fp16", "strongly_typed", ...
    builder_options: str = "{}"  # canonical JSON of the remaining builder settings

    @classmethod
    def create(
        cls,
        onnx_path: str | os.PathLike,
        *,
        trt_version: str,
        gpu_name: str,
        compute_capability: str | tuple[int, int],
        precision: str,
        builder_options: dict[str, Any] | None = None,
    ) -> EngineKey:
        if isinstance(compute_capability, tuple):
            compute_capability = ".".join(str(v) for v in compute_capability)
        for name, value in (("trt_version", trt_version), ("gpu_name", gpu_name), ("precision", precision)):
            if not value:
                raise ValueError(f"engine cache key field {name!r} must be a non-empty string")
        options = json.dumps(builder_options or {}, sort_keys=True, separators=(",", ":"), default=str)
        return cls(
            onnx_sha256=onnx_fingerprint(onnx_path),
            trt_version=str(trt_version),
            gpu_name=str(gpu_name),
            compute_capability=str(compute_capability),
            precision=str(precision),
            builder_options=options,
        )

    @property
    def digest(self) -> str:
        """File stem of the entry: 32 hex chars of the sha256 over the canonical JSON of all fields."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class CachedEngine(Generic[T]):
    """What :meth:`EngineCache.get_or_build` returns: the loaded engine and how it was obtained."""

    engine: T
    path: Path
    key: EngineKey
    built: bool  # False: loaded from the cache
    reason: str = "hit"  # hit | missing | stale | corrupt
    build_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout_s: float = 1800.0, poll_s: float = 0.05) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if needed), between processes and between threads.

    Raises :class:`EngineCacheError` after ``timeout_s``. The lock dies with its process, so a crashed builder
    never leaves the cache locked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    waited = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if not waited:
                    log.info("engine cache: waiting for another process to finish building (%s)", path.name)
                    waited = True
                if time.monotonic() >= deadline:
                    raise EngineCacheError(f"timed out after {timeout_s:.0f} s waiting for the lock {path}") from None
                time.sleep(poll_s)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class EngineCache(Generic[T]):
    """A folder of engines. ``get_or_build`` is the one entry point; the rest is inspection and housekeeping."""

    def __init__(self, cache_dir: str | os.PathLike, lock_timeout_s: float = 1800.0) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.lock_timeout_s = lock_timeout_s

    def engine_path(self, key: EngineKey) -> Path:
        return self.cache_dir / f"{key.digest}{ENGINE_SUFFIX}"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.cache_dir / f"{key.digest}{SIDECAR_SUFFIX}"

    def lock_path(self, key: EngineKey) -> Path:
        return self.cache_dir / f"{key.digest}{LOCK_SUFFIX}"

    # -- reading ---------------------------------------------------------------------------------------------------
    def check(self, key: EngineKey) -> tuple[str, bytes | None]:
        """Classify the entry for ``key``: ("hit", bytes) or ("missing" | "stale" | "corrupt", None) with a log line."""
        engine_file, sidecar_file = self.engine_path(key), self.sidecar_path(key)
        if not engine_file.exists() and not sidecar_file.exists():
            return "missing", None
        try:
            meta = json.loads(sidecar_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("engine cache: unreadable sidecar %s (%s); rebuilding", sidecar_file.name, exc)
            return "corrupt", None
        if meta.get("key") != asdict(key):
            log.warning("engine cache: %s was built for a different key; rebuilding", engine_file.name)
            return "stale", None
        try:
            data = engine_file.read_bytes()
        except OSError as exc:
            log.warning("engine cache: cannot read %s (%s); rebuilding", engine_file.name, exc)
            return "corrupt", None
        if len(data) != meta.get("engine_bytes"):
            log.warning(
                "engine cache: %s has %d bytes, sidecar says %s (truncated?); rebuilding",
                engine_file.name,
                len(data),
                meta.get("engine_bytes"),
            )
            return "corrupt", None
        if hashlib.sha256(data).hexdigest() != meta.get("engine_sha256"):
            log.warning("engine cache: %s fails its sha256 check; rebuilding", engine_file.name)
            return "corrupt", None
        return "hit", data

    def _try_load(self, key: EngineKey, deserialize_fn: Callable[[bytes], T]) -> tuple[str, T | None]:
        status, data = self.check(key)
        if data is None:
            return status, None
        try:
            engine = deserialize_fn(data)
        except Exception as exc:  # any deserialisation failure means: rebuild
            log.warning("engine cache: deserializing %s failed (%s); rebuilding", self.engine_path(key).name, exc)
            return "corrupt", None
        if engine is None:
            log.warning("engine cache: deserializing %s returned nothing; rebuilding", self.engine_path(key).name)
            return "corrupt", None
        return "hit", engine

    # -- writing ---------------------------------------------------------------------------------------------------
    def store(self, key: EngineKey, data: bytes, extra: dict[str, Any] | None = None) -> Path:
        """Write an engine and then its sidecar (the sidecar is the commit mark: no sidecar, no valid entry)."""
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
            raise EngineCacheError("the engine build returned no bytes")
        data = bytes(data)
        engine_file = self.engine_path(key)
        with contextlib.suppress(FileNotFoundError):
            self.sidecar_path(key).unlink()
        atomic_write_bytes(engine_file, data)
        meta = {
            "format": SIDECAR_FORMAT,
            "key": asdict(key),
            "digest": key.digest,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "created_unix": time.time(),
            "engine_bytes": len(data),
            "engine_sha256": hashlib.sha256(data).hexdigest(),
            **(extra or {}),
        }
        atomic_write_bytes(self.sidecar_path(key), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        return engine_file

    def get_or_build(
        self,
        key: EngineKey,
        build_fn: Callable[[], bytes],
        deserialize_fn: Callable[[bytes], T],
        extra: dict[str, Any] | None = None,
    ) -> CachedEngine[T]:
        """Load the engine for ``key``, building (under the lock) and storing it when it is missing or unusable.

        ``build_fn()`` returns serialized engine bytes; ``deserialize_fn(bytes)`` returns the live engine (or raises).
        """
        status, engine = self._try_load(key, deserialize_fn)
        if engine is not None:
            return CachedEngine(engine, self.engine_path(key), key, built=False)
        with file_lock(self.lock_path(key), self.lock_timeout_s):
            # Another process may have built it while we waited for the lock.
            status_now, engine = self._try_load(key, deserialize_fn)
            if engine is not None:
                return CachedEngine(engine, self.engine_path(key), key, built=False)
            if status == "missing":
                status = status_now
            log.info("engine cache: building %s (%s) ...", self.engine_path(key).name, status)
            t0 = time.perf_counter()
            data = build_fn()
            build_s = time.perf_counter() - t0
            path = self.store(key, data, {"build_s": round(build_s, 3), **(extra or {})})
            log.info("engine cache: built %s in %.1f s (%d bytes)", path.name, build_s, len(data))
        try:
            engine = deserialize_fn(bytes(data))
        except Exception as exc:
            raise EngineCacheError(f"a freshly built engine {path} failed to deserialize: {exc}") from exc
        if engine is None:
            raise EngineCacheError(f"a freshly built engine {path} failed to deserialize (returned None)")
        return CachedEngine(engine, path, key, built=True, reason=status, build_s=build_s)

    # -- housekeeping ----------------------------------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Sidecars of every complete entry, newest first."""
        metas = []
        for sidecar in self.cache_dir.glob(f"*{SIDECAR_SUFFIX}"):
            with contextlib.suppress(OSError, ValueError):
                metas.append(json.loads(sidecar.read_text(encoding="utf-8")))
        return sorted(metas, key=lambda m: m.get("created_unix", 0.0), reverse=True)

    def prune(self, keep: int) -> list[Path]:
        """Delete all but the ``keep`` newest entries (engines are large); returns the removed engine paths."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        removed = []
        for meta in self.entries()[keep:]:
            digest = meta.get("digest", "")
            for suffix in (ENGINE_SUFFIX, SIDECAR_SUFFIX, LOCK_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    (self.cache_dir / f"{digest}{suffix}").unlink()
            removed.append(self.cache_dir / f"{digest}{ENGINE_SUFFIX}")
        return removed


def get_or_build(
    onnx_path: str | os.PathLike,
    build_fn: Callable[[], bytes],
    deserialize_fn: Callable[[bytes], T],
    *,
    cache_dir: str | os.PathLike,
    trt_version: str,
    gpu_name: str,
    compute_capability: str | tuple[int, int],
    precision: str,
    builder_options: dict[str, Any] | None = None,
    lock_timeout_s: float = 1800.0,
) -> CachedEngine[T]:
    """One-call form: key the ONNX file with the TensorRT/GPU/precision fields and load or build its engine."""
    key = EngineKey.create(
        onnx_path,
        trt_version=trt_version,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        precision=precision,
        builder_options=builder_options,
    )
    return EngineCache(cache_dir, lock_timeout_s).get_or_build(key, build_fn, deserialize_fn)
