"""Where candidate evaluations run: the :class:`Evaluator` interface, a local process pool, and Ray.

An evaluation is ``fn(job) -> result`` with a picklable module-level ``fn`` and a JSON-like ``job``; ``run`` yields
``(index, result)`` as each finishes, so the search can record every result the moment it exists.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

Job = dict[str, Any]


class Evaluator:
    """Runs evaluation jobs; subclasses decide where."""

    name = "base"

    def run(self, fn: Callable[[Job], dict], jobs: list[Job]) -> Iterator[tuple[int, dict]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (no-op by default)."""


class SerialEvaluator(Evaluator):
    """In this process, one after another (tests, debugging)."""

    name = "serial"

    def run(self, fn: Callable[[Job], dict], jobs: list[Job]) -> Iterator[tuple[int, dict]]:
        for i, job in enumerate(jobs):
            yield i, fn(job)


def _call(fn: Callable[[Job], dict], job: Job) -> dict:
    return fn(job)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class ProcessPoolEvaluator(Evaluator):
    """A local pool of spawned processes (the default); each worker uses ``threads`` torch threads."""

    name = "process"

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers, self.threads = workers, threads
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(self.threads,)
            )
        return self._pool

    def run(self, fn: Callable[[Job], dict], jobs: list[Job]) -> Iterator[tuple[int, dict]]:
        pool = self._executor()
        pending = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayEvaluator(Evaluator):
    """Spread evaluations over a Ray cluster (``address=None`` starts a local instance). Needs ``pip install ray``."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus_per_job: float = 1.0) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the Ray evaluator needs the optional `ray` package: pip install 'ray[default]'") from exc
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.num_cpus = num_cpus_per_job

    def run(self, fn: Callable[[Job], dict], jobs: list[Job]) -> Iterator[tuple[int, dict]]:
        ray = self._ray
        remote = ray.remote(num_cpus=self.num_cpus)(_call)  # fn travels as an argument: partials are not functions
        refs = {remote.remote(fn, job): i for i, job in enumerate(jobs)}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                yield refs.pop(ref), ray.get(ref)

    def close(self) -> None:
        self._ray.shutdown()


def make_evaluator(kind: str = "process", workers: int = 2, address: str | None = None) -> Evaluator:
    """The evaluator named ``kind``: serial, process (``workers`` processes) or ray (cluster at ``address``)."""
    if kind == "serial":
        return SerialEvaluator()
    if kind == "process":
        return ProcessPoolEvaluator(workers)
    if kind == "ray":
        return RayEvaluator(address)
    raise ValueError(f"unknown evaluator {kind!r}; choose serial, process or ray")
