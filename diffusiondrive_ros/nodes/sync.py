"""Newest-message bookkeeping for the planner node: stamps, time-synchronised input sets, staleness, acceleration.

Pure Python (no ROS): subscription callbacks check each header stamp (:func:`checked_stamp`) and
:meth:`InputStore.put` converted messages, the planning thread asks :meth:`InputStore.select` for the newest set whose
stamps agree within a tolerance, and never gets a set twice. The store accounts for every message it accepted:
each one ends up either used by a plan or counted as unused under a reason (``on_unused``).

Stamp policy (why): a message stamped far in the future used to be stored and then block every later, valid message
of its input as "out of order" for good. Now a stamp that is invalid or further ahead of the node's clock than a
tolerance is rejected before anything is stored, and a stored message that is still ahead of the clock gives way to
a later-arriving fresh message with an older stamp (also when the clock itself jumps back, e.g. a simulator reset).
Every stored stamp is therefore at most the node's clock when a fresh message arrives, so an out-of-order rejection
can only hold back messages stamped before the clock's present, which are older than the stored one anyway.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

NANOSEC_PER_SEC = 1_000_000_000


class RejectedInput(ValueError):
    """An input message the node does not use; ``reason`` is the short tag counted in diagnostics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class OutOfOrderError(ValueError):
    """A message whose stamp is not newer than the last one of the same input."""

    reason = "out_of_order"


def checked_stamp(sec: int, nanosec: int, now: float, max_ahead_s: float) -> float:
    """Header stamp -> seconds, rejecting stamps that cannot be planned with.

    ``bad_stamp``: ``nanosec`` outside [0, 1e9) (it would silently add seconds), a negative or an unset (zero) stamp.
    ``future_stamp``: more than ``max_ahead_s`` ahead of the node clock ``now``; stored, it would hold back every
    later message of its input.
    """
    sec, nanosec = int(sec), int(nanosec)
    if not 0 <= nanosec < NANOSEC_PER_SEC:
        raise RejectedInput("bad_stamp", f"nanosec {nanosec} is outside [0, 1e9)")
    if sec < 0 or (sec == 0 and nanosec == 0):
        raise RejectedInput("bad_stamp", f"stamp {sec}.{nanosec:09d} is negative or unset")
    stamp = sec + nanosec * 1e-9
    if stamp - now > max_ahead_s:
        raise RejectedInput("future_stamp", f"stamp is {stamp - now:.3f} s ahead of the node clock "
                                            f"(max_stamp_ahead_s {max_ahead_s:g})")
    return stamp


@dataclass(frozen=True)
class Stamped:
    stamp: float  # header stamp [s]
    value: Any


@dataclass(eq=False)
class _Entry:
    """A stored message and what became of it: ``pending`` until it is used by a plan or counted as unused."""

    stamp: float
    value: Any
    state: str = "pending"  # pending | used | unused


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


# Why a stored message was never planned from (``unused.<input>:<reason>`` in diagnostics).
UNUSED_REASONS = {
    "superseded": "a complete set with it was skipped for a newer one (a dropped frame)",
    "incomplete": "no complete, synchronised set formed around it before a newer set was planned or it expired",
    "cleared": "still waiting when planning stopped (deactivate, cleanup)",
    "evicted_ahead": "it was stamped ahead of the node clock and a later-arriving message had an older stamp",
}


class InputStore:
    """Keeps the last ``history`` messages of every named input; thread-safe, never blocks for long.

    A stored message ahead of the clock gives way only to a message no older than ``stale_after_s`` (an old,
    stale one is still out of order). ``on_unused(input, reason)`` and ``on_used(input)`` are called (under the
    store's lock, so keep them cheap) once for every accepted message, so that accepted = used + unused + stored;
    ``on_expired_frame()`` for a complete set pushed out of the history before any selection saw it (planning fell
    ``history`` messages behind), which :attr:`Selection.superseded` cannot count.
    """

    def __init__(self, names: Iterable[str], history: int = 8, stale_after_s: float = math.inf,
                 tolerance_s: float = 0.05, on_unused: Callable[[str, str], None] | None = None,
                 on_used: Callable[[str], None] | None = None,
                 on_expired_frame: Callable[[], None] | None = None) -> None:
        self.names = tuple(names)
        if not self.names or history < 1:
            raise ValueError("InputStore needs at least one input name and history >= 1")
        self.history = history
        self.stale_after_s = stale_after_s
        self.tolerance_s = tolerance_s  # for telling complete (dropped) sets from incomplete ones
        self._on_unused = on_unused or (lambda name, reason: None)
        self._on_used = on_used or (lambda name: None)
        self._on_expired_frame = on_expired_frame or (lambda: None)
        self._queues: dict[str, deque[_Entry]] = {n: deque() for n in self.names}
        self._lock = threading.Lock()
        self._last_key: tuple[float, ...] | None = None
        self._last_reference = -math.inf

    # -- writing ------------------------------------------------------------------------------------------------
    def admission(self, name: str, stamp: float, now: float | None = None) -> str:
        """What :meth:`put` would do with this stamp, ``append`` or ``evict_ahead`` (drop the stored messages that
        are not older, then append); raises :class:`OutOfOrderError` when the message must be rejected."""
        if name not in self._queues:
            raise KeyError(f"unknown input {name!r}; inputs: {self.names}")
        if not math.isfinite(stamp):
            raise ValueError(f"{name}: stamp {stamp!r} is not finite")
        with self._lock:
            return self._admission(name, stamp, now)

    def _admission(self, name: str, stamp: float, now: float | None) -> str:
        queue = self._queues[name]
        if not queue or stamp > queue[-1].stamp:
            return "append"
        newest = queue[-1]
        if now is not None and newest.stamp > now and now - stamp <= self.stale_after_s:
            return "evict_ahead"  # the stored one claims a time the clock has not reached: trust the fresh newcomer
        raise OutOfOrderError(f"{name}: stamp {stamp:.6f} s is not newer than the last {newest.stamp:.6f} s")

    def put(self, name: str, stamp: float, value: Any, now: float | None = None) -> str:
        """Store a message (``now``: the node clock, which enables the eviction and reset rules); returns the
        admission (see :meth:`admission`)."""
        if name not in self._queues:
            raise KeyError(f"unknown input {name!r}; inputs: {self.names}")
        if not math.isfinite(stamp):
            raise ValueError(f"{name}: stamp {stamp!r} is not finite")
        with self._lock:
            action = self._admission(name, stamp, now)
            queue = self._queues[name]
            if action == "evict_ahead":
                while queue and queue[-1].stamp >= stamp:
                    self._drop(name, queue.pop(), "evicted_ahead")
            if len(queue) >= self.history:
                self._expire(name, queue.popleft())
            queue.append(_Entry(stamp, value))
        return action

    def _drop(self, name: str, entry: _Entry, reason: str) -> None:
        if entry.state == "pending":
            entry.state = "unused"
            self._on_unused(name, reason)

    def _complete_at(self, stamp: float, skip: str) -> bool:
        """Whether every input other than ``skip`` holds a message within the tolerance of ``stamp``."""
        return all(any(abs(e.stamp - stamp) <= self.tolerance_s for e in q)
                   for n, q in self._queues.items() if n != skip)

    def _expire(self, name: str, entry: _Entry) -> None:
        """An entry pushed out of the history (planning fell behind by ``history`` messages)."""
        if entry.state != "pending":
            return
        complete = self._complete_at(entry.stamp, name)
        if complete and entry.stamp > self._last_reference and self._is_laggiest(name):
            self._on_expired_frame()  # a dropped frame that no selection will see
        self._drop(name, entry, "superseded" if complete else "incomplete")

    def _is_laggiest(self, name: str) -> bool:
        newest = {n: q[-1].stamp for n, q in self._queues.items() if q}
        return bool(newest) and name in newest and newest[name] == min(newest.values())

    # -- reading ------------------------------------------------------------------------------------------------
    def newest(self, name: str) -> Stamped | None:
        with self._lock:
            queue = self._queues[name]
            return Stamped(queue[-1].stamp, queue[-1].value) if queue else None

    def clear(self) -> None:
        """Forget everything; messages not yet planned from are counted as unused (``cleared``)."""
        with self._lock:
            for name, queue in self._queues.items():
                while queue:
                    self._drop(name, queue.popleft(), "cleared")
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
        contributes its message nearest to it. Messages older than the chosen ones that were never used are
        counted as unused (``superseded`` when a complete set existed around them, else ``incomplete``).
        """
        missing, stale = self.stale_inputs(now, stale_after_s)
        if missing:
            return Selection("missing", missing=missing, stale=stale)
        if stale:
            return Selection("stale", stale=stale)
        with self._lock:
            laggiest_name = min(self._queues, key=lambda n: self._queues[n][-1].stamp)
            laggiest = self._queues[laggiest_name]
            reference = laggiest[-1].stamp
            chosen = {n: min(q, key=lambda e: abs(e.stamp - reference)) for n, q in self._queues.items()}
            stamps = [e.stamp for e in chosen.values()]
            spread = max(stamps) - min(stamps)
            if spread > tolerance_s:
                return Selection("unsynchronised", spread_s=spread)
            key = tuple(stamps)
            if key == self._last_key:
                return Selection("no_new_data", spread_s=spread)
            superseded = sum(self._last_reference < e.stamp < reference and self._complete_at(e.stamp, laggiest_name)
                             for e in laggiest)
            self._last_key, self._last_reference = key, reference
            for name, queue in self._queues.items():
                used = chosen[name]
                for entry in queue:
                    if entry is used:
                        if entry.state == "pending":
                            entry.state = "used"
                            self._on_used(name)
                    elif entry.state == "pending" and entry.stamp < used.stamp:
                        self._drop(name, entry, "superseded" if self._complete_at(entry.stamp, name)
                                   else "incomplete")
            inputs = {n: Stamped(e.stamp, e.value) for n, e in chosen.items()}
        return Selection("ready", inputs=inputs, spread_s=spread, stamp=max(stamps), superseded=superseded)


class AccelerationEstimator:
    """Ego acceleration by finite difference of velocity over message stamps, low-pass filtered.

    ``alpha`` weighs the newest difference (1: unfiltered); a gap longer than ``max_gap_s`` restarts the estimate.
    A sample whose finite difference exceeds ``max_accel`` (or is not finite) is rejected (``implausible_accel``)
    and leaves the estimate alone, so one bad sample cannot poison it; a second sample that agrees with the
    rejected one confirms a real jump (e.g. a switched odometry source) and restarts the estimate from it. The
    returned estimate is always finite and within ``max_accel``.
    """

    def __init__(self, alpha: float = 0.5, max_gap_s: float = 1.0, max_accel: float = math.inf) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not max_accel > 0:
            raise ValueError(f"max_accel must be > 0, got {max_accel}")
        self.alpha = alpha
        self.max_gap_s = max_gap_s
        self.max_accel = max_accel
        self.reset()

    def reset(self) -> None:
        self._last: tuple[float, float, float] | None = None
        self._rejected: tuple[float, float, float] | None = None  # the last implausible sample, if the latest
        self._accel = (0.0, 0.0)

    def _difference(self, start: tuple[float, float, float], stamp: float, vx: float,
                    vy: float) -> tuple[float, float] | None:
        """Finite-difference acceleration from ``start``; None when it is implausible or not finite."""
        dt = stamp - start[0]
        accel = ((vx - start[1]) / dt, (vy - start[2]) / dt)
        if not all(math.isfinite(a) for a in accel) or math.hypot(*accel) > self.max_accel:
            return None
        return accel

    def update(self, stamp: float, vx: float, vy: float) -> tuple[float, float]:
        if self._last is not None and stamp - self._last[0] <= 0:
            raise OutOfOrderError(f"odometry stamp {stamp:.6f} s is not newer than {self._last[0]:.6f} s")
        if self._last is None or stamp - self._last[0] > self.max_gap_s:
            return self._restart(stamp, vx, vy)
        accel = self._difference(self._last, stamp, vx, vy)
        if accel is None:
            rejected, self._rejected = self._rejected, (stamp, vx, vy)
            if rejected is not None and stamp > rejected[0] and self._difference(rejected, stamp, vx, vy) is not None:
                return self._restart(stamp, vx, vy)  # two samples agree: the velocity really jumped
            raise RejectedInput("implausible_accel", f"velocity ({vx:.6g}, {vy:.6g}) m/s implies more than "
                                                     f"max_accel {self.max_accel:g} m/s^2 since the last sample")
        a = self.alpha
        filtered = (a * accel[0] + (1 - a) * self._accel[0], a * accel[1] + (1 - a) * self._accel[1])
        self._accel = filtered if all(math.isfinite(v) for v in filtered) else (0.0, 0.0)
        self._last, self._rejected = (stamp, vx, vy), None
        return self._accel

    def _restart(self, stamp: float, vx: float, vy: float) -> tuple[float, float]:
        self._last, self._rejected, self._accel = (stamp, vx, vy), None, (0.0, 0.0)
        return self._accel
