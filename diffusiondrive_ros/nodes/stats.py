"""Counters and latency statistics of the planner node, reported on /diagnostics. Pure Python, thread-safe.

Message accounting: every sensor message the node's callbacks receive is counted (``received.<input>``) and ends
up in exactly one of ``used.<input>`` (planned from), ``unused.<input>:<reason>`` (stored, never planned from),
``rejected.<input>:<reason>`` or ``ignored.<input>:inactive``, apart from the few still stored. Messages that
were published but never delivered are seen as gaps in the publishers' sequence numbers (``unread.<input>``,
:class:`PublicationGaps`); Fast DDS reports those it lost in transport itself (``lost.<input>``).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Hashable, Mapping

import numpy as np


class NodeStats:
    """What the node did: plans and their latency, dropped frames, rejected messages by input and reason."""

    def __init__(self, latency_window: int = 500, rate_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._latency_ms: deque[float] = deque(maxlen=latency_window)
        # the planner's own stage timings (PlanResult.latency_ms): model-only time next to the node's plan time
        self._stage_ms: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=latency_window))
        self._publish_times: deque[float] = deque()
        self.rate_window_s = rate_window_s
        self.plans = 0
        self.dropped_frames = 0  # complete input sets superseded by a newer one before the planner got to them
        self.planner_errors = 0
        self.non_finite_outputs = 0
        self.rejected: Counter[str] = Counter()  # "input:reason" -> count
        self.skipped: Counter[str] = Counter()  # planning wake-ups without a plan, by selection status
        self.events: Counter[str] = Counter()  # "received.<input>", "unused.<input>:<reason>", "lost.<input>", ...

    def record_plan(self, now: float, latency_ms: float, stages_ms: Mapping[str, float] | None = None) -> None:
        with self._lock:
            self.plans += 1
            self._latency_ms.append(latency_ms)
            for stage, value in (stages_ms or {}).items():
                self._stage_ms[stage].append(float(value))
            self._publish_times.append(now)
            while self._publish_times and now - self._publish_times[0] > self.rate_window_s:
                self._publish_times.popleft()

    def record_rejected(self, input_name: str, reason: str) -> None:
        with self._lock:
            self.rejected[f"{input_name}:{reason}"] += 1

    def count(self, key: str, n: int = 1) -> None:
        """A message-accounting event (``received.<input>``, ``unused.<input>:<reason>``, ...), reported as is."""
        with self._lock:
            self.events[key] += n

    def record_dropped(self, frames: int = 1) -> None:
        with self._lock:
            self.dropped_frames += frames

    def record_stage(self, stage: str, value_ms: float) -> None:
        """A node-side timing (e.g. input age at arrival) reported next to the planner's own stages."""
        with self._lock:
            self._stage_ms[stage].append(float(value_ms))

    def record_skip(self, status: str) -> None:
        with self._lock:
            self.skipped[status] += 1

    def record_error(self, non_finite: bool) -> None:
        with self._lock:
            if non_finite:
                self.non_finite_outputs += 1
            else:
                self.planner_errors += 1

    def counters(self) -> dict[str, int]:
        """A snapshot of the problem counters, for :func:`recent_problems` between two diagnostics messages."""
        with self._lock:
            out = {"planner_errors": self.planner_errors, "non_finite_outputs": self.non_finite_outputs}
            out.update({f"rejected.{key}": count for key, count in self.rejected.items()})
            out.update({f"skipped.{key}": count for key, count in self.skipped.items()})
            out.update(self.events)
        return out

    def achieved_rate_hz(self, now: float) -> float:
        with self._lock:
            times = [t for t in self._publish_times if now - t <= self.rate_window_s]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    def latency_percentiles_ms(self) -> dict[str, float]:
        with self._lock:
            values = np.asarray(self._latency_ms, dtype=np.float64)
        if values.size == 0:
            return {}
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}

    def stage_percentiles_ms(self) -> dict[str, dict[str, float]]:
        """Stage (preprocess, infer, postprocess, total, node.*) -> p50 / p99 of the recorded timings."""
        with self._lock:
            stages = {name: np.asarray(values, dtype=np.float64) for name, values in self._stage_ms.items() if values}
        return {name: dict(zip(("p50", "p99"), map(float, np.percentile(v, [50, 99])))) for name, v in stages.items()}

    def summary(self, now: float) -> dict[str, str]:
        """Key/value strings for a DiagnosticStatus."""
        counters = self.counters()
        out = {
            "achieved_rate_hz": f"{self.achieved_rate_hz(now):.2f}",
            "plans_published": str(self.plans),
            "dropped_frames": str(self.dropped_frames),
            "non_finite_outputs": str(counters["non_finite_outputs"]),
            "planner_errors": str(counters["planner_errors"]),
        }
        for name, value in self.latency_percentiles_ms().items():
            out[f"latency_ms_{name}"] = f"{value:.2f}"
        for stage, values in self.stage_percentiles_ms().items():
            for name, value in values.items():
                out[f"stage_ms.{stage}.{name}"] = f"{value:.2f}"
        out["rejected_total"] = str(sum(n for key, n in counters.items() if key.startswith("rejected.")))
        for key in sorted(k for k in counters if k not in ("planner_errors", "non_finite_outputs")):
            out[key] = str(counters[key])
        return out


def recent_problems(before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    """What went wrong between two :meth:`NodeStats.counters` snapshots, as short phrases (empty: nothing).

    Missing and stale inputs are reported from the input store instead, as a state rather than as events.
    """
    def grown(key: str) -> int:
        return after.get(key, 0) - before.get(key, 0)

    problems = []
    if n := grown("planner_errors"):
        problems.append(f"{n} planner error(s)")
    if n := grown("non_finite_outputs"):
        problems.append(f"{n} non-finite plan(s) dropped")
    if n := grown("skipped.unsynchronised"):
        problems.append(f"unsynchronised inputs at {n} planning wake-up(s)")
    # Non-finite LiDAR points are normal (no return) and dropped silently; points beyond the range are not.
    for prefix, suffix, phrase in (("rejected.", "", "rejected message(s)"),
                                   ("lost.", "", "message(s) lost in transport"),
                                   ("dropped_points.", ":implausible_range", "implausible LiDAR point(s) dropped")):
        grew = {key[len(prefix):]: grown(key) for key in after
                if key.startswith(prefix) and key.endswith(suffix) and grown(key)}
        if grew:
            problems.append(f"{sum(grew.values())} {phrase} ("
                            + ", ".join(f"{key} x{n}" for key, n in sorted(grew.items())) + ")")
    return problems


class PublicationGaps:
    """Messages a publisher sent that never reached this subscription, from gaps in its sequence numbers.

    With a KEEP_LAST sensor queue of depth 1, a message that arrives while the previous one still waits replaces
    it, and Fast DDS does not report that as lost; only the publisher's sequence numbers show it. One counter per
    writer (``publisher_gid``), at most ``max_writers`` of them (the least recently seen is forgotten). A number
    that does not increase means the writer restarted: it starts over without counting.
    """

    def __init__(self, max_writers: int = 32) -> None:
        self.max_writers = max_writers
        self._last: OrderedDict[Hashable, int] = OrderedDict()

    def update(self, writer: Hashable, sequence: int) -> int:
        """Messages skipped between the writer's previous delivered message and this one."""
        last = self._last.pop(writer, None)
        self._last[writer] = sequence
        if len(self._last) > self.max_writers:
            self._last.popitem(last=False)
        if last is None or sequence <= last:
            return 0
        return sequence - last - 1
