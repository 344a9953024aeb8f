"""A worker thread that runs a job as soon as new input arrives, at most ``rate_hz`` times per second.

The planner node plans in this thread instead of in an executor timer: a timer at the sensor rate adds up to one
period (22 ms at 45 Hz, 11 ms on average) between a complete input set and the plan, and an executor thread busy
with inference delays the subscription callbacks. Here every subscription callback calls :meth:`notify` (cheap),
and the thread wakes, waits until the rate cap allows another run if needed, and runs the job once for however
many notifications arrived meanwhile (the job itself picks the newest input). The job returns whether it did the
rate-limited work: a wake-up that found an input set still filling up must not delay the plan of that set once its
last message arrives. Pure Python: no ROS.

The cap is a token bucket (:class:`RateCap`), not a minimum interval: with the cap at the sensor rate, a minimum
interval delays every frame that completes a little early after one that completed late, which is half of them
under normal transport jitter (measured: 5.5 ms median wait at 45 Hz in bench/bench_node.py). The bucket holds
the same long-run rate but lets one run's worth of slack absorb the jitter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RATE_BURST = 2.0  # runs the bucket holds: one run of slack on top of the steady rate


class RateCap:
    """Token bucket: at most ``rate_hz * T + burst`` runs in any window of T seconds.

    Pure (the caller passes the clock): :meth:`delay` says how long to wait before a run may start, :meth:`take`
    records a run that started.
    """

    def __init__(self, rate_hz: float, burst: float = RATE_BURST) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if not burst >= 1.0:
            raise ValueError(f"burst must be >= 1 run, got {burst}")
        self.rate_hz, self.burst = rate_hz, burst
        self._tokens, self._updated = burst, None

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_hz)
        self._updated = now

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until a run may start (0.0: now)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate_hz)

    def take(self, now: float) -> None:
        """A run started at ``now``."""
        self._refill(now)
        self._tokens -= 1.0


class NewInputWorker:
    """Runs ``job()`` in a daemon thread after :meth:`notify`; ``on_error`` gets any exception the job raises.

    ``job`` returns True when it did the work that ``rate_hz`` limits (a raising job counts as such).
    """

    def __init__(self, job: Callable[[], bool], rate_hz: float, on_error: Callable[[BaseException], None],
                 name: str = "new-input-worker") -> None:
        self._cap = RateCap(rate_hz)
        self._job = job
        self._on_error = on_error
        self._name = name
        self._wake = threading.Condition()
        self._pending = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # jobs that did the rate-limited work

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self._name} is already running")
        with self._wake:
            self._pending, self._stopping = False, False
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New input is there: run the job soon (several notifications before it runs count once)."""
        with self._wake:
            self._pending = True
            self._wake.notify()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the job in flight (if any) and join the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"{self._name} did not stop within {timeout_s} s")
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                # Honour the rate cap without busy-waiting; stop() still interrupts the wait.
                delay = self._cap.delay(time.monotonic())
                if delay > 0 and self._wake.wait_for(lambda: self._stopping, timeout=delay):
                    return
                self._pending = False
            started = time.monotonic()
            try:
                worked = self._job()
            except Exception as err:  # the thread must survive any job failure
                self._on_error(err)
                worked = True
            if worked:
                self._cap.take(started)
                self.runs += 1
