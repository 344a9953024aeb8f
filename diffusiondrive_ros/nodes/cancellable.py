"""Run a long job (model load, engine build, warm-up) so that a shutdown request does not have to wait for it.

Pure Python (no ROS). Why: configure used to load and warm up the planner in the executor's thread, where a SIGTERM
was noticed only after the job ended (43.6 s with a long warm-up; a TensorRT engine build takes minutes), and
``docker stop`` would have ended in SIGKILL. :func:`run_cancellable` runs the job in a daemon thread and polls
``should_stop`` while it waits. On a stop request it sets the job's cancel event (the job checks it between steps)
and returns at once by raising :class:`Cancelled`; a job stuck in one long native call is abandoned, and
:func:`abandoned_jobs` tells the process to exit without waiting for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_abandoned: list[threading.Thread] = []


class Cancelled(Exception):
    """The job was given up because a stop was requested."""


def run_cancellable(job: Callable[[threading.Event], T], should_stop: Callable[[], bool], poll_s: float = 0.05,
                    name: str = "cancellable-job") -> T:
    """``job(cancel)`` in a daemon thread: its result, its exception re-raised, or :class:`Cancelled` as soon as
    ``should_stop()`` is true (then ``cancel`` is set and the thread is left to finish or be abandoned)."""
    outcome: dict[str, object] = {}
    done = threading.Event()
    cancel = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = job(cancel)
        except BaseException as err:  # handed to the waiting thread, which re-raises it
            outcome["error"] = err
        finally:
            done.set()

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    while not done.wait(poll_s):
        if should_stop():
            cancel.set()
            _abandoned.append(thread)
            raise Cancelled(f"{name} cancelled by a stop request")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def abandoned_jobs() -> list[threading.Thread]:
    """Cancelled jobs whose threads are still running (e.g. inside one native call)."""
    return [thread for thread in _abandoned if thread.is_alive()]
