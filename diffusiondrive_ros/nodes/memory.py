"""Give freed heap memory back to the operating system after an oversized input. Pure Python (ctypes, no ROS).

Why: glibc raises its mmap threshold after a large block is freed, so later image-sized buffers come from the heap,
and freed heap memory stays with the process: after a few 50 MB images the node's RSS stayed ~300 MB above its
steady state. ``malloc_trim(0)`` returns the free heap pages; the node calls it once the oversized messages have
left its input store (:class:`LargeInputTrimmer`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

LARGE_INPUT_BYTES = 16 * 1024 * 1024  # an input message this large triggers a trim once it has been let go


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_heap() -> bool:
    """Return free heap memory to the OS; False where the C library has no ``malloc_trim``."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class LargeInputTrimmer:
    """Trims the heap ``delay_s`` after the last oversized input (by then the store has replaced it).

    ``saw(size, now)`` for every input message; ``poll(now)`` from a periodic timer, True when it trimmed.
    """

    def __init__(self, delay_s: float = 2.0, threshold_bytes: int = LARGE_INPUT_BYTES,
                 release: Callable[[], bool] = release_free_heap) -> None:
        self.delay_s = delay_s
        self.threshold_bytes = threshold_bytes
        self._release = release
        self._due: float | None = None
        self.trims = 0

    def saw(self, size: int, now: float) -> None:
        if size >= self.threshold_bytes:
            self._due = now + self.delay_s

    def poll(self, now: float) -> bool:
        if self._due is None or now < self._due:
            return False
        self._due = None
        if self._release():
            self.trims += 1
            return True
        return False
