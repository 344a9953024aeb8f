"""What the evolutionary searches (JASQ, EAT-NAS) share: the results directory, the population and its replacement
rule, drawing new valid genomes, evaluating children with weight inheritance, and the summary of a run."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..measure.evaluators import Evaluator
from ..space.genome import DeployabilityError, Genome, genome_from_json
from ..tasks.base import Task
from .inheritance import evaluate_inheriting
from .pareto import front_table, jasq_objective, nsga2_order, pareto_front, plot_front

log = logging.getLogger(__name__)
SELECTIONS = ("objective", "nsga2")
CANDIDATES = "candidates.jsonl"


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
    """The live population (at most ``size`` records) and the replacement rule."""

    def __init__(self, size: int, selection: str = "objective") -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}")
        self.size, self.selection = size, selection
        self.members: list[dict] = []

    def order(self) -> list[int]:
        """Member indices best-first."""
        if self.selection == "nsga2":
            return nsga2_order(self.members)
        return sorted(range(len(self.members)), key=lambda i: (-self.members[i]["objective"], i))

    def add(self, record: dict) -> None:
        self.members.append(record)
        if len(self.members) > self.size:
            self.members.pop(self.order()[-1])

    def select_parent(self, rng: np.random.Generator) -> dict:
        """Objective mode: the best (as in the paper). NSGA-II: binary tournament on (rank, crowding)."""
        ranked = self.order()
        if self.selection == "objective":
            return self.members[ranked[0]]
        position = {idx: pos for pos, idx in enumerate(ranked)}
        a, b = rng.choice(len(self.members), size=2, replace=False)
        return self.members[a if position[a] < position[b] else b]


def novel_genome(
    make: Callable[[], Genome], seen: set[str], validate: Callable[[Genome], None], tries: int = 50
) -> Genome:
    """The first genome from ``make`` that is new (hash not in ``seen``) and passes ``validate``."""
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


@dataclass(frozen=True)
class Child:
    """A genome to evaluate: its slot in the step, the parent its record names and the weights it inherits."""

    slot: int
    genome: Genome
    parent: str | None = None
    parent_weights: str | None = None


@dataclass(frozen=True)
class Objective:
    """The paper's scalar objective ACC·(SIZE/T)^w of a record."""

    target_bytes: float
    w: float = -0.07

    def __call__(self, metrics: dict) -> float:
        return jasq_objective(metrics["accuracy"], metrics["size_bytes"], self.target_bytes, self.w)


def evaluate_children(
    task: Task,
    children: list[Child],
    step: int,
    seed: int,
    out: ResultsDir,
    objective: Objective,
    evaluator: Evaluator,
) -> Iterator[tuple[dict, dict]]:
    """Evaluate the children (inheriting their parents' weights) and append each record to ``out`` the moment it
    finishes; yields (record, the latency-table entries its evaluation measured)."""
    jobs = []
    for c in children:
        job = task.job(c.genome, seed=seed * 1_000_003 + step * 1000 + c.slot)
        job["parent_weights"] = c.parent_weights
        job["weights_out"] = str(out.weights_path(c.genome.hash))
        job["latency_table"] = str(out.latency_table)
        jobs.append(job)
    t0 = time.time()
    for i, metrics in evaluator.run(partial(evaluate_inheriting, task.evaluate_fn), jobs):
        c = children[i]
        new_entries = metrics.pop("new_latency_entries", {})
        record = {
            "step": step,
            "slot": c.slot,
            "hash": c.genome.hash,
            "genome": c.genome.to_json(),
            "parent": c.parent,
            "metrics": metrics,
            "objective": objective(metrics),
            "finished": time.time(),
            "wall_s": time.time() - t0,
        }
        out.append(record)
        yield record, new_entries


def write_summary(
    out: ResultsDir,
    records: list[dict],
    objective: Objective,
    title: str,
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
        f"Best ACC·(SIZE/T)^w (T = {objective.target_bytes:g} B, w = {objective.w}): `{best['hash']}` "
        f"objective {best['objective']:.4f}\n"
    )
    with open(out.root / "front.jsonl", "w", encoding="utf-8") as f:
        for r in front:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    (out.root / "best.json").write_text(genome_from_json(best["genome"]).to_json(indent=2) + "\n")
    plot_front(records, out.root / "front.png", title=title, quality_label=quality_label)


def stored_task_name(out: ResultsDir) -> str:
    """The task name stored in the results directory's config (for plot titles)."""
    path = out.root / "config.json"
    return json.loads(path.read_text()).get("task", "") if path.is_file() else ""
