"""Newest-message bookkeeping for the planner node: time-synchronised input sets, staleness, acceleration.

Pure Python (no ROS): subscription callbacks :meth:`InputStore.put` converted messages, the planning thread asks
:meth:`InputStore.select` for the newest set whose stamps agree within a tolerance, and never gets a set twice.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class OutOfOrderError(ValueError):
    """A message whose stamp is not newer than the last one of the same input."""

    reason = "out_of_order"


@dataclass(frozen=True)
class Stamped:
    stamp: float  # header stamp [s]
    value: Any


@dataclass(frozen=True)
class Selection:
    """Outcome of one :meth:`InputStore.select`: ``inputs`` is None unless ``status == "ready"``."""

    status: str  # ready | missing | stale | unsynchronised | no_new_data
    inputs: dict[str, Stamped] | None = None
    missing: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    spread_s: float = 0.0
    stamp: float = field(default=0.0)  # newest stamp of the set: the plan's frame stamp
    superseded: int = 0  # complete sets newer than the last selected one that this selection skipped


class InputStore:
    """Keeps the last ``history`` messages of every named input; thread-safe, never blocks for long."""

    def __init__(self, names: Iterable[str], history: int = 8) -> None:
        self.names = tuple(names)
        if not self.names or history < 1:
            raise ValueError("InputStore needs at least one input name and history >= 1")
        self._queues: dict[str, deque[Stamped]] = {n: deque(maxlen=history) for n in self.names}
        self._lock = threading.Lock()
        self._last_key: tuple[float, ...] | None = None
        self._last_reference = -math.inf

    def put(self, name: str, stamp: float, value: Any) -> None:
        if name not in self._queues:
            raise KeyError(f"unknown input {name!r}; inputs: {self.names}")
        if not math.isfinite(stamp):
            raise ValueError(f"{name}: stamp {stamp!r} is not finite")
        with self._lock:
            queue = self._queues[name]
            if queue and stamp <= queue[-1].stamp:
                raise OutOfOrderError(f"{name}: stamp {stamp:.6f} s is not newer than the last {queue[-1].stamp:.6f} s")
            queue.append(Stamped(stamp, value))

    def newest(self, name: str) -> Stamped | None:
        with self._lock:
            queue = self._queues[name]
            return queue[-1] if queue else None

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._last_key = None
            self._last_reference = -math.inf

    def stale_inputs(self, now: float, stale_after_s: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(missing, stale): inputs never received, and inputs whose newest stamp is older than ``stale_after_s``."""
        with self._lock:
            missing = tuple(n for n in self.names if not self._queues[n])
            stale = tuple(n for n in self.names if self._queues[n] and now - self._queues[n][-1].stamp > stale_after_s)
        return missing, stale

    def select(self, now: float, tolerance_s: float, stale_after_s: float) -> Selection:
        """The newest set of one message per input whose stamps lie within ``tolerance_s``; each set only once.

        The reference time is the oldest of the inputs' newest stamps (the laggiest sensor); every other input
        contributes its message nearest to it.
        """
        missing, stale = self.stale_inputs(now, stale_after_s)
        if missing:
            return Selection("missing", missing=missing, stale=stale)
        if stale:
            return Selection("stale", stale=stale)
        with self._lock:
            laggiest = min(self._queues.values(), key=lambda q: q[-1].stamp)
            reference = laggiest[-1].stamp
            chosen = {n: min(q, key=lambda m: abs(m.stamp - reference)) for n, q in self._queues.items()}
            stamps = [m.stamp for m in chosen.values()]
            spread = max(stamps) - min(stamps)
            if spread > tolerance_s:
                return Selection("unsynchronised", spread_s=spread)
            key = tuple(stamps)
            if key == self._last_key:
                return Selection("no_new_data", spread_s=spread)
            superseded = sum(self._last_reference < m.stamp < reference for m in laggiest)
            self._last_key, self._last_reference = key, reference
        return Selection("ready", inputs=chosen, spread_s=spread, stamp=max(stamps), superseded=superseded)


class AccelerationEstimator:
    """Ego acceleration by finite difference of velocity over message stamps, low-pass filtered.

    ``alpha`` weighs the newest difference (1: unfiltered); a gap longer than ``max_gap_s`` restarts the estimate.
    """

    def __init__(self, alpha: float = 0.5, max_gap_s: float = 1.0) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        self._last: tuple[float, float, float] | None = None
        self._accel = (0.0, 0.0)

    def update(self, stamp: float, vx: float, vy: float) -> tuple[float, float]:
        if self._last is not None:
            t0, vx0, vy0 = self._last
            dt = stamp - t0
            if dt <= 0:
                raise OutOfOrderError(f"odometry stamp {stamp:.6f} s is not newer than {t0:.6f} s")
            if dt > self.max_gap_s:
                self._accel = (0.0, 0.0)
            else:
                ax, ay = (vx - vx0) / dt, (vy - vy0) / dt
                a = self.alpha
                self._accel = (a * ax + (1 - a) * self._accel[0], a * ay + (1 - a) * self._accel[1])
        self._last = (stamp, vx, vy)
        return self._accel
