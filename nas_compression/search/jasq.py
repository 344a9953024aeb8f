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

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..evaluate.evaluator import Evaluator, SerialEvaluator
from ..evaluate.latency import LatencyTable
from ..space.genome import DeployabilityError, Genome, genome_from_json
from ..space.sampling import SearchSpace, mutate, random_genome, random_policy
from .pareto import front_table, jasq_objective, nsga2_order, pareto_front, plot_front

log = logging.getLogger(__name__)
SELECTIONS = ("objective", "nsga2")
CANDIDATES = "candidates.jsonl"


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


class ResultsDir:
    """``config.json`` (what was asked), ``candidates.jsonl`` (every evaluation), weights/, latency table, front."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.candidates = self.root / CANDIDATES
        self.weights = self.root / "weights"
        self.latency_table = self.root / "latency_table.json"

    def check_config(self, config: dict) -> None:
        """Refuse to resume a directory created with different settings."""
        path = self.root / "config.json"
        config = json.loads(json.dumps(config))  # tuples -> lists, as stored
        if path.is_file():
            old = json.loads(path.read_text())
            if old != config:
                diff = {k: (old.get(k), config.get(k)) for k in set(old) | set(config) if old.get(k) != config.get(k)}
                raise ValueError(f"{self.root} holds a search with other settings {diff}; use a new directory")
        else:
            path.write_text(json.dumps(config, indent=2, sort_keys=True))

    def load(self) -> list[dict]:
        if not self.candidates.is_file():
            return []
        out = []
        for line in self.candidates.read_text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a torn last line from a kill: that candidate is re-run
                    log.warning("ignoring a torn line in %s", self.candidates)
        return out

    def append(self, record: dict) -> None:
        with open(self.candidates, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def weights_path(self, genome_hash: str) -> Path:
        return self.weights / f"{genome_hash}.safetensors"


class Population:
    """The live population and the replacement rule."""

    def __init__(self, cfg: JasqConfig) -> None:
        self.cfg = cfg
        self.members: list[dict] = []

    def order(self) -> list[int]:
        """Member indices best-first."""
        if self.cfg.selection == "nsga2":
            return nsga2_order(self.members)
        return sorted(range(len(self.members)), key=lambda i: (-self.members[i]["objective"], i))

    def add(self, record: dict) -> None:
        self.members.append(record)
        if len(self.members) > self.cfg.population:
            self.members.pop(self.order()[-1])

    def select_parent(self, rng: np.random.Generator) -> dict:
        """Objective mode: the best (as in the paper). NSGA-II: binary tournament on (rank, crowding)."""
        ranked = self.order()
        if self.cfg.selection == "objective":
            return self.members[ranked[0]]
        position = {idx: pos for pos, idx in enumerate(ranked)}
        a, b = rng.choice(len(self.members), size=2, replace=False)
        return self.members[a if position[a] < position[b] else b]


def _steps(cfg: JasqConfig) -> list[int]:
    """Number of children of each step: step 0 is the initial population."""
    sizes = [cfg.population]
    left = cfg.budget - cfg.population
    while left > 0:
        sizes.append(min(cfg.batch, left))
        left -= sizes[-1]
    return sizes


def _novel(make, seen: set[str], validate, tries: int) -> Genome:  # noqa: ANN001
    for _ in range(tries):
        g = make()
        if g.hash in seen:
            continue
        try:
            validate(g)
        except DeployabilityError:
            continue
        return g
    raise RuntimeError(f"no new valid genome after {tries} tries: the search space is exhausted or too constrained")


def _children(
    step: int,
    n: int,
    pop: Population,
    seen: set[str],
    task,
    cfg: JasqConfig,  # noqa: ANN001
    space: SearchSpace,
) -> list[tuple[Genome, str | None]]:
    rng = np.random.default_rng([cfg.seed, step])
    taken = set(seen)
    out = []
    seeds = [g for g in (getattr(task, "seeds", None) or ()) if g.hash not in taken][:n] if step == 0 else []
    for _ in range(n):
        if step == 0 and seeds:
            g = seeds.pop(0)
            task.validate(g)  # a hand-made reference that does not fit is a setup error, not a skipped candidate
            taken.add(g.hash)
            out.append((g, None))
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
        g = _novel(maker, taken, task.validate, cfg.max_mutation_tries)
        taken.add(g.hash)
        out.append((g, None if parent is None else parent["hash"]))
    return out


def run_jasq(
    task,  # noqa: ANN001 - a search task (search.tasks)
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
    if hasattr(task, "settings"):
        settings["task_settings"] = task.settings()
    if getattr(task, "seeds", None):
        settings["seeds"] = [g.hash for g in task.seeds]
    out.check_config(settings)
    done = {(r["step"], r["slot"]): r for r in out.load()}
    table = LatencyTable.load(out.latency_table)
    pop = Population(cfg)
    sizes = _steps(cfg)
    evaluated_now = 0
    bar = tqdm(total=cfg.budget, initial=len(done), desc=f"JASQ {task.name}", unit="cand", disable=not progress)
    try:
        for step, n in enumerate(sizes):
            seen = {r["hash"] for r in done.values() if r["step"] < step}
            children = _children(step, n, pop, seen, task, cfg, space)
            todo = [k for k in range(n) if (step, k) not in done]
            jobs = []
            for k in todo:
                genome, parent = children[k]
                job = task.job(genome, seed=cfg.seed * 1_000_003 + step * 1000 + k)
                job["parent_weights"] = str(out.weights_path(parent)) if parent else None
                job["weights_out"] = str(out.weights_path(genome.hash))
                job["latency_table"] = str(out.latency_table)
                jobs.append(job)
            if stop_after is not None and evaluated_now + len(jobs) > stop_after:
                jobs = jobs[: max(0, stop_after - evaluated_now)]
            t0 = time.time()
            for i, metrics in evaluator.run(task.evaluate_fn, jobs):
                k = todo[i]
                genome, parent = children[k]
                new_entries = metrics.pop("new_latency_entries", {})
                if new_entries:
                    table.entries.update(new_entries)
                    table.save()
                record = {
                    "step": step,
                    "slot": k,
                    "hash": genome.hash,
                    "genome": genome.to_json(),
                    "parent": parent,
                    "metrics": metrics,
                    "objective": jasq_objective(metrics["accuracy"], metrics["size_bytes"], cfg.target_bytes, cfg.w),
                    "finished": time.time(),
                    "wall_s": time.time() - t0,
                }
                out.append(record)
                done[(step, k)] = record
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
    write_summary(
        out,
        records,
        cfg,
        getattr(task, "quality_label", "validation accuracy (quantized)"),
        getattr(task, "report_metrics", ()),
    )
    return records


def write_summary(
    out: ResultsDir,
    records: list[dict],
    cfg: JasqConfig,
    quality_label: str = "validation accuracy (quantized)",
    report_metrics: tuple[str, ...] = (),
) -> None:
    """front.md (Pareto table), front.png, best.json (best objective genome), front.jsonl."""
    if not records:
        return
    front = pareto_front(records)
    best = max(records, key=lambda r: r["objective"])
    (out.root / "front.md").write_text(
        f"# Pareto front ({len(front)} of {len(records)} candidates)\n\n{front_table(front, report_metrics)}\n\n"
        f"Best ACC·(SIZE/T)^w (T = {cfg.target_bytes:g} B, w = {cfg.w}): `{best['hash']}` "
        f"objective {best['objective']:.4f}\n"
    )
    with open(out.root / "front.jsonl", "w", encoding="utf-8") as f:
        for r in front:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    (out.root / "best.json").write_text(genome_from_json(best["genome"]).to_json(indent=2) + "\n")
    plot_front(
        records,
        out.root / "front.png",
        title=f"JASQ {task_title(out)} ({cfg.selection}), {len(records)} candidates",
        quality_label=quality_label,
    )


def task_title(out: ResultsDir) -> str:
    """The task name stored in the results directory's config (for plot titles)."""
    path = out.root / "config.json"
    return json.loads(path.read_text()).get("task", "") if path.is_file() else ""
