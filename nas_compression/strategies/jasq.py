"""JASQ: evolutionary joint search over architecture and precision, with a results directory that survives kills.

Population of the task's seed genomes (if any: e.g. the planner's hand-made backbone) and random candidates, each
trained briefly, quantized and evaluated. Every step mutates a parent (one architecture choice unless policy-only,
and one bit width), trains the child starting from the parent's weights where shapes match, quantizes, evaluates,
and drops the worst. "Best"/"worst" is either the paper's scalar objective
ACC·(SIZE/T)^w - really optimised, unlike the released code - or NSGA-II (Pareto rank, then crowding distance) over
(accuracy, deployed size, latency).

Resumability: ``candidates.jsonl`` gets one line per evaluated candidate the moment it finishes. Children of step
``s`` come from ``rng([seed, s])`` and the population after replaying steps ``< s``, so a restart regenerates exactly
the same children and only evaluates those that have no line yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..measure.evaluators import Evaluator, SerialEvaluator
from ..measure.latency import LatencyTable
from ..space.genome import genome_from_json
from ..space.sampling import SearchSpace, mutate, random_genome, random_policy
from ..tasks.base import Task
from .evolution import (
    SELECTIONS,
    Child,
    Objective,
    Population,
    ResultsDir,
    evaluate_children,
    novel_genome,
    stored_task_name,
    write_summary,
)


@dataclass(frozen=True)
class JasqConfig:
    population: int = 16
    budget: int = 64  # evaluated candidates in all, the initial population included
    batch: int = 2  # children per step, evaluated in parallel
    target_bytes: float = 50_000.0  # T of ACC·(SIZE/T)^w
    w: float = -0.07
    selection: str = "objective"
    policy_only: bool = False
    seed: int = 0
    max_mutation_tries: int = 50

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}")
        if self.population < 2 or self.budget < self.population or self.batch < 1:
            raise ValueError("need population >= 2, budget >= population and batch >= 1")
        if self.w >= 0:
            raise ValueError("w must be negative (a larger model must cost accuracy-equivalent)")

    @property
    def objective(self) -> Objective:
        return Objective(self.target_bytes, self.w)


def _steps(cfg: JasqConfig) -> list[int]:
    """Number of children of each step: step 0 is the initial population."""
    sizes = [cfg.population]
    left = cfg.budget - cfg.population
    while left > 0:
        sizes.append(min(cfg.batch, left))
        left -= sizes[-1]
    return sizes


def _children(
    step: int, n: int, pop: Population, seen: set[str], task: Task, cfg: JasqConfig, space: SearchSpace, out: ResultsDir
) -> list[Child]:
    """The ``n`` children of ``step``: a pure function of (seed, step, population), so a resume redraws them."""
    rng = np.random.default_rng([cfg.seed, step])
    taken = set(seen)
    out_children = []
    seeds = [g for g in task.seeds if g.hash not in taken][:n] if step == 0 else []
    for k in range(n):
        if step == 0 and seeds:
            g = seeds.pop(0)
            task.validate(g)  # a hand-made reference that does not fit is a setup error, not a skipped candidate
            taken.add(g.hash)
            out_children.append(Child(k, g))
            continue
        if step == 0:
            maker = (
                (lambda: random_policy(rng, space, task.template))
                if cfg.policy_only
                else (lambda: random_genome(rng, space, task.template))
            )
            parent = None
        else:
            parent = pop.select_parent(rng)
            base = genome_from_json(parent["genome"])
            maker = lambda b=base: mutate(b, rng, space, cfg.policy_only)  # noqa: E731
        g = novel_genome(maker, taken, task.validate, cfg.max_mutation_tries)
        taken.add(g.hash)
        if parent is None:
            out_children.append(Child(k, g))
        else:
            out_children.append(Child(k, g, parent["hash"], str(out.weights_path(parent["hash"]))))
    return out_children


def run_jasq(
    task: Task,
    cfg: JasqConfig,
    results: str | Path,
    evaluator: Evaluator | None = None,
    space: SearchSpace | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> list[dict]:
    """Run (or resume) a search; returns every record. ``stop_after`` evaluations simulates a kill (tests)."""
    from tqdm import tqdm

    space = space or SearchSpace()
    evaluator = evaluator or SerialEvaluator()
    out = ResultsDir(results)
    settings = {"task": task.name, "jasq": asdict(cfg), "space": asdict(space), "template": task.template.to_dict()}
    if task.settings():
        settings["task_settings"] = task.settings()
    if task.seeds:
        settings["seeds"] = [g.hash for g in task.seeds]
    out.check_config(settings)
    done = {(r["step"], r["slot"]): r for r in out.load()}
    table = LatencyTable.load(out.latency_table)
    pop = Population(cfg.population, cfg.selection)
    sizes = _steps(cfg)
    evaluated_now = 0
    bar = tqdm(total=cfg.budget, initial=len(done), desc=f"JASQ {task.name}", unit="cand", disable=not progress)
    try:
        for step, n in enumerate(sizes):
            seen = {r["hash"] for r in done.values() if r["step"] < step}
            todo = [c for c in _children(step, n, pop, seen, task, cfg, space, out) if (step, c.slot) not in done]
            if stop_after is not None and evaluated_now + len(todo) > stop_after:
                todo = todo[: max(0, stop_after - evaluated_now)]
            for record, new_entries in evaluate_children(task, todo, step, cfg.seed, out, cfg.objective, evaluator):
                if new_entries:
                    table.entries.update(new_entries)
                    table.save()
                done[(step, record["slot"])] = record
                evaluated_now += 1
                bar.update(1)
                bar.set_postfix(best=f"{max(r['objective'] for r in done.values()):.4f}")
            if any((step, k) not in done for k in range(n)):
                break  # stopped early (stop_after): the rest is evaluated on resume
            for k in range(n):
                pop.add(done[(step, k)])
    finally:
        bar.close()
        evaluator.close()
    records = sorted(done.values(), key=lambda r: (r["step"], r["slot"]))
    title = f"JASQ {stored_task_name(out)} ({cfg.selection}), {len(records)} candidates"
    write_summary(out, records, cfg.objective, title, task.quality_label, task.report_metrics)
    return records
