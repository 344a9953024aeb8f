"""EAT-NAS: search a small proxy first, then transfer the winner elastically to the large target and evolve on.

Stage 1 is an ordinary evolutionary search (JASQ's, whose stage genome already holds width and depth) on the small
proxy (low resolution / fewer images). Its best genome is the *basic architecture*. Stage 2 seeds the target
population with the basic architecture (put into the target's macro layout) and elastic perturbations of it -
width one step up or down, depth +-1, a kernel, operation or skip change - all inheriting the basic architecture's
trained weights where names and shapes match, then continues the evolution (mutate the best, inherit its weights,
drop the worst). :func:`search_cost_saved` compares the cost with a from-scratch search on the target reaching the
same objective.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..measure.evaluators import Evaluator, SerialEvaluator
from ..space.genome import Genome, StageGene, genome_from_json
from ..space.sampling import SearchSpace, mutate
from ..tasks.base import Task
from .evolution import Child, Population, ResultsDir, evaluate_children, novel_genome, stored_task_name, write_summary
from .jasq import JasqConfig, run_jasq

PERTURBATIONS = ("width", "depth", "kernel", "op", "skip")


@dataclass(frozen=True)
class EATConfig:
    small_population: int = 4
    small_budget: int = 8
    target_population: int = 4
    target_budget: int = 8  # evaluations on the target, the seeded population included
    batch: int = 2
    target_bytes: float = 50_000.0
    w: float = -0.07
    seed: int = 0

    def jasq(self, population: int, budget: int) -> JasqConfig:
        return JasqConfig(population, budget, self.batch, self.target_bytes, self.w, "objective", False, self.seed)


def _step(values: tuple, current, delta: int):  # noqa: ANN001, ANN202 - one step along an ordered choice list
    i = values.index(current) if current in values else int(np.argmin([abs(v - current) for v in values]))
    return values[int(np.clip(i + delta, 0, len(values) - 1))]


def perturb_stage(stage: StageGene, what: str, rng: np.random.Generator, space: SearchSpace) -> StageGene:
    """One elastic change: width/depth one step either way; kernel, operation or skip to another choice."""
    if what == "width":
        return replace(stage, width_mult=float(_step(space.width_mults, stage.width_mult, int(rng.choice([-1, 1])))))
    if what == "depth":
        return replace(stage, depth=int(_step(space.depths, stage.depth, int(rng.choice([-1, 1])))))
    if what == "kernel":
        return replace(stage, kernel=int(rng.choice([k for k in space.kernels if k != stage.kernel] or [stage.kernel])))
    if what == "op":
        ops = [o for o in space.ops if o != (stage.block, stage.expansion)] or list(space.ops)
        block, expansion = ops[int(rng.integers(len(ops)))]
        return replace(stage, block=block, expansion=expansion)
    if what == "skip":
        return replace(stage, skip=str(rng.choice([s for s in space.skips if s != stage.skip] or [stage.skip])))
    raise ValueError(f"unknown perturbation {what!r}; choose one of {PERTURBATIONS}")


def elastic_perturbation(genome: Genome, rng: np.random.Generator, space: SearchSpace, changes: int = 2) -> Genome:
    """``changes`` elastic changes on random stages of the image encoder (precisions untouched)."""
    stages = list(genome.image.stages)
    for _ in range(changes):
        i = int(rng.integers(len(stages)))
        stages[i] = perturb_stage(stages[i], str(rng.choice(PERTURBATIONS)), rng, space)
    return replace(genome, image=replace(genome.image, stages=tuple(stages)))


def transfer(basic: Genome, target_template: Genome) -> Genome:
    """The basic architecture's choices (stages, precisions) in the target's macro layout (input, stem, strides)."""
    image = replace(target_template.image, stages=basic.image.stages, stem_bits=basic.image.stem_bits)
    return replace(target_template, image=image, linear_bits=basic.linear_bits)


def _evaluate(
    task: Task, children: list[Child], out: ResultsDir, step: int, cfg: EATConfig, evaluator: Evaluator, seen: set[str]
) -> list[dict]:
    """The children's records in slot order (the latency entries they measure are not kept: stage 2 is short)."""
    records: list[dict] = [{} for _ in children]
    objective = cfg.jasq(cfg.target_population, cfg.target_budget).objective
    for record, _ in evaluate_children(task, children, step, cfg.seed, out, objective, evaluator):
        records[record["slot"]] = record
        seen.add(record["hash"])
    return records


def run_transfer(
    basic: Genome,
    basic_weights: str | None,
    task: Task,
    cfg: EATConfig,
    results: str | Path,
    evaluator: Evaluator | None = None,
    space: SearchSpace | None = None,
) -> list[dict]:
    """Stage 2: seed the target population from the basic architecture, then evolve with weight inheritance."""
    space = space or SearchSpace()
    evaluator = evaluator or SerialEvaluator()
    out = ResultsDir(results)
    if out.candidates.is_file():
        out.candidates.unlink()  # stage 2 is short and reruns whole
    rng = np.random.default_rng([cfg.seed, 2])
    seed_genome = transfer(basic, task.template)
    task.validate(seed_genome)
    seen: set[str] = set()
    initial = [seed_genome]
    for _ in range(cfg.target_population - 1):
        taken = seen | {x.hash for x in initial}
        initial.append(novel_genome(lambda: elastic_perturbation(seed_genome, rng, space), taken, task.validate))
    # an EAT record's parent names the weights it inherited (the basic architecture's lie in stage 1's directory)
    children = [Child(k, g, basic_weights, basic_weights) for k, g in enumerate(initial)]
    records = _evaluate(task, children, out, 0, cfg, evaluator, seen)
    jcfg = cfg.jasq(cfg.target_population, cfg.target_budget)
    pop = Population(jcfg.population, jcfg.selection)
    for r in records:
        pop.add(r)
    step = 1
    try:
        while len(records) < cfg.target_budget:
            children = []
            for k in range(min(cfg.batch, cfg.target_budget - len(records))):
                parent = pop.select_parent(rng)
                base = genome_from_json(parent["genome"])
                taken = seen | {c.genome.hash for c in children}
                genome = novel_genome(lambda b=base: mutate(b, rng, space), taken, task.validate)
                weights = str(out.weights_path(parent["hash"]))
                children.append(Child(k, genome, weights, weights))
            new = _evaluate(task, children, out, step, cfg, evaluator, seen)
            for r in new:
                pop.add(r)
            records += new
            step += 1
    finally:
        evaluator.close()
    title = f"JASQ {stored_task_name(out)} ({jcfg.selection}), {len(records)} candidates"
    write_summary(out, records, jcfg.objective, title)
    return records


def cost_to_reach(records: list[dict], level: float) -> dict:
    """Evaluations and summed evaluation seconds, in evaluation order, until the best objective reaches ``level``."""
    best, seconds = -np.inf, 0.0
    for i, r in enumerate(sorted(records, key=lambda r: (r["step"], r["slot"]))):
        seconds += r["metrics"]["eval_seconds"]
        best = max(best, r["objective"])
        if best >= level:
            return {"reached": True, "evaluations": i + 1, "eval_seconds": seconds, "best": best}
    return {"reached": False, "evaluations": len(records), "eval_seconds": seconds, "best": float(best)}


def search_cost_saved(small: list[dict], target: list[dict], scratch: list[dict]) -> dict:
    """EAT's cost (all small-proxy evaluations + target evaluations until its best) against a from-scratch search.

    If the scratch search never reaches EAT's best objective, its cost is a lower bound (``scratch.reached`` False).
    """
    level = max(r["objective"] for r in target)
    eat_target = cost_to_reach(target, level)
    eat = {
        "evaluations": len(small) + eat_target["evaluations"],
        "target_evaluations": eat_target["evaluations"],
        "eval_seconds": sum(r["metrics"]["eval_seconds"] for r in small) + eat_target["eval_seconds"],
    }
    scr = cost_to_reach(scratch, level)
    return {
        "level": level,
        "eat": eat,
        "scratch": scr,
        "target_evaluations_saved": scr["evaluations"] - eat["target_evaluations"],
        "seconds_saved": scr["eval_seconds"] - eat["eval_seconds"],
    }


@dataclass
class EATResult:
    basic: Genome
    best: Genome
    small: list[dict]
    target: list[dict]
    scratch: list[dict] | None
    cost: dict | None
    search_seconds: float


def run_eat(
    small_task: Task,
    target_task: Task,
    cfg: EATConfig,
    results: str | Path,
    evaluator: Evaluator | None = None,
    space: SearchSpace | None = None,
    scratch_budget: int = 0,
    progress: bool = False,
) -> EATResult:
    """Both stages (and, with ``scratch_budget``, the from-scratch baseline on the target); writes eat.json."""
    root = Path(results)
    evaluator = evaluator or SerialEvaluator()
    t0 = time.perf_counter()
    small = run_jasq(
        small_task, cfg.jasq(cfg.small_population, cfg.small_budget), root / "small", evaluator, space, progress
    )
    best_small = max(small, key=lambda r: r["objective"])
    basic = genome_from_json(best_small["genome"])
    weights = str(ResultsDir(root / "small").weights_path(best_small["hash"]))
    target = run_transfer(basic, weights, target_task, cfg, root / "target", evaluator, space)
    search_s = time.perf_counter() - t0
    best = genome_from_json(max(target, key=lambda r: r["objective"])["genome"])
    scratch = cost = None
    if scratch_budget:
        scratch = run_jasq(
            target_task,
            cfg.jasq(cfg.target_population, scratch_budget),
            root / "scratch",
            evaluator,
            space,
            progress,
        )
        cost = search_cost_saved(small, target, scratch)
    summary = {"config": asdict(cfg), "basic": basic.hash, "best": best.hash, "search_seconds": search_s, "cost": cost}
    (root / "eat.json").write_text(json.dumps(summary, indent=2) + "\n")
    best.save(root / "best.json")
    return EATResult(basic, best, small, target, scratch, cost, search_s)
