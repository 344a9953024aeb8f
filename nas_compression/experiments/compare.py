"""``nas-compress compare``: JASQ, DSO-NAS, EGS and EAT-NAS on one task and one training budget; one table, one plot.

Shared budget: ``evaluations`` candidate evaluations for each evolutionary search (EAT-NAS spends half of them on the
task's small proxy), and as many training batches as those evaluations cost for each supernet (DSO-NAS: a third
pre-training, the rest alternating weight and lambda batches; EGS: one batch per step). No search is seeded with a
hand-made genome, so each row is the method's own finding.

Every method's final network is then trained from scratch with one final budget and one seed, quantized, exported to
its deployed Q/DQ ONNX graph and measured, so the rows compare:

- classification (:class:`ClassifyArena`): the genomes' classifiers at their own precisions and the derived cell
  networks themselves at INT8, retrained for ``final_epochs``; the deployed graph's accuracy in ONNX Runtime and its
  latency.
- planner (:class:`PlannerArena`): every final genome (the supernets' through their nearest genome) and the hand-made
  backbone of the base config as a reference row, trained for ``final_steps``; the errors of the quantized planner
  (which the Q/DQ graph reproduces) on the val split, and the graphs timed interleaved in ONNX Runtime so that load
  drifts hit all rows alike.

Writes compare.json, compare.md and compare.png under the results folder, beside each method's search (``<method>/``;
the supernets' ``arch.json``, ``history.json`` and ``best.json``) and the final ONNX graphs.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import onnx
import torch
from tqdm import tqdm

from diffusiondrive_ros.model import build_model, load_config

from ..measure.evaluators import SerialEvaluator
from ..measure.latency import TimingConfig, interleaved_latency
from ..quant.export import deployed_weight_bytes
from ..space.genome import Genome, genome_from_json
from ..space.sampling import SPACES
from ..strategies.dso import DSOConfig, run_dso, split_steps
from ..strategies.eat import EATConfig, run_eat
from ..strategies.egs import EGSConfig, run_egs
from ..strategies.jasq import JasqConfig, run_jasq
from ..strategies.supernet import SupernetResult
from ..tasks.classify import ClassifyTask, build_classifier, deploy_network, load_dataset, quantize_classifier, retrain
from ..tasks.planner import PlannerBudget, PlannerTask, evaluate_planner, planner_template, timing_feeds
from .plots import CostPanel, plot_methods

METHODS = ("jasq", "dso", "egs", "eat")


@dataclass(frozen=True)
class CompareConfig:
    evaluations: int = 8  # per evolutionary method; the supernets get the training batches of as many evaluations
    target_bytes: float = 20_000.0  # T of JASQ's and EAT-NAS's ACC·(SIZE/T)^w
    space: str = "default"  # genome stage choices (space.sampling.SPACES)
    seed: int = 0
    methods: tuple[str, ...] = METHODS

    def __post_init__(self) -> None:
        if self.evaluations < 4:
            raise ValueError("evaluations must be >= 4 (EAT needs two evaluations on each task)")
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {METHODS}")
        if self.space not in SPACES:
            raise ValueError(f"unknown search space {self.space!r}; choose one of {sorted(SPACES)}")


@dataclass
class MethodRow:
    method: str
    genome: str | None  # the final genome (JSON); None when the final network is the derived cells themselves
    architecture: str  # what the table shows of the final network
    search_seconds: float | None  # None: a hand-made reference
    search_steps: int | None  # training batches spent searching
    evaluations: int | None  # candidate evaluations (train + quantize + validate + measure)
    metrics: dict = field(default_factory=dict)  # the final network's quality (the task's metrics)
    latency_ms: float = float("nan")  # of the final Q/DQ graph in ONNX Runtime CPU
    deployed_bytes: int = 0
    onnx_path: str = ""

    @property
    def hash(self) -> str:
        return genome_from_json(self.genome).hash if self.genome else "-"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[MethodRow], str]
    numeric: bool = False  # right-aligned


def _cost(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


class Arena(ABC):
    """What a comparison needs of a task beyond the search protocols: the supernets' share of the budget, the
    reference rows, the from-scratch training and measurement of the finals, and the report's columns and plot."""

    task: ClassifyTask | PlannerTask
    batch: int  # children per evolutionary step
    default_target_bytes: float  # T of ACC·(SIZE/T)^w unless given
    quality_metric: str  # the metric the plot shows
    quality_label: str
    reference: str | None = None  # the method name of a reference row (drawn as a star)

    @abstractmethod
    def steps_per_evaluation(self, task: ClassifyTask | PlannerTask) -> int:
        """Training batches of one candidate evaluation of ``task`` (the task or its small proxy)."""

    @abstractmethod
    def describe(self, genome: Genome) -> str:
        """What the table's architecture column shows of a final genome."""

    @abstractmethod
    def dso_config(self, cfg: CompareConfig) -> DSOConfig: ...

    @abstractmethod
    def egs_config(self, cfg: CompareConfig) -> EGSConfig: ...

    def references(self) -> list[MethodRow]:
        """Hand-made rows beside the methods' (none by default)."""
        return []

    @abstractmethod
    def finish(self, rows: list[MethodRow], cells: dict[str, SupernetResult], cfg: CompareConfig, root: Path,
               progress: bool) -> None:
        """Train every final network from scratch, deploy and measure it; fills the rows' metrics and costs."""

    @abstractmethod
    def settings(self) -> dict:
        """The task's part of compare.json's config."""

    @abstractmethod
    def heading(self, cfg: CompareConfig) -> str:
        """compare.md's text above the table."""

    @abstractmethod
    def columns(self, cfg: CompareConfig) -> tuple[Column, ...]: ...

    @abstractmethod
    def budget_text(self, cfg: CompareConfig) -> str:
        """The task and its budget, for the plot's title."""

    def quality(self, row: MethodRow) -> float:
        return row.metrics[self.quality_metric]

    def plot_title(self, cfg: CompareConfig) -> str:
        rival = f" vs the hand-made {self.reference.split()[0]} backbone" if self.reference else ""
        return f"JASQ vs DSO-NAS vs EGS vs EAT-NAS{rival} ({self.budget_text(cfg)})"

    def panels(self, rows: list[MethodRow]) -> tuple[CostPanel, ...]:
        return (
            CostPanel("deployed weight bytes", [r.deployed_bytes for r in rows], log_scale=True),
            CostPanel("latency (ms, ONNX Runtime CPU, 1 thread)", [r.latency_ms for r in rows], log_scale=True),
            CostPanel("search wall time (s)", [r.search_seconds for r in rows]),
        )


# -- classification ------------------------------------------------------------------------------------------------
class ClassifyArena(Arena):
    """Budget in training epochs; finals retrained for ``final_epochs`` (SGD at 0.05) and deployed as they are."""

    batch = 2
    default_target_bytes = 20_000.0
    quality_metric = "onnx_accuracy"
    quality_label = "deployed accuracy (ONNX Runtime)"

    def __init__(self, task: ClassifyTask, final_epochs: float = 3.0) -> None:
        self.task, self.final_epochs = task, final_epochs

    def supernet_epochs(self, cfg: CompareConfig) -> float:
        return cfg.evaluations * self.task.budget.epochs

    def steps_per_evaluation(self, task: ClassifyTask | PlannerTask) -> int:
        return task.epoch_steps(task.budget.epochs)

    def describe(self, genome: Genome) -> str:
        return genome.hash

    def dso_config(self, cfg: CompareConfig) -> DSOConfig:
        epochs = self.supernet_epochs(cfg)
        return DSOConfig(
            pretrain_steps=self.task.epoch_steps(epochs / 3),
            search_steps=self.task.epoch_steps(2 * epochs / 3, half=True),
            gamma=0.1,
            budget="flops",
            seed=cfg.seed,
        )

    def egs_config(self, cfg: CompareConfig) -> EGSConfig:
        return EGSConfig(search_steps=self.task.epoch_steps(self.supernet_epochs(cfg)), seed=cfg.seed)

    def finish(self, rows: list[MethodRow], cells: dict[str, SupernetResult], cfg: CompareConfig, root: Path,
               progress: bool) -> None:
        data, bs = load_dataset(self.task.dataset), self.task.budget.batch_size
        for row in tqdm(rows, desc="retrain finals from scratch", unit="net", disable=not progress):
            if row.method in cells:
                torch.manual_seed(cfg.seed)
                model = self.task.cell_network(cells[row.method].method, cells[row.method].archs)
                model = retrain(model, data, self.final_epochs, 0.05, bs, cfg.seed)
                report = deploy_network(model, data, root / f"{row.method}.onnx")
            else:
                genome = genome_from_json(row.genome)
                model = retrain(build_classifier(genome, cfg.seed), data, self.final_epochs, 0.05, bs, cfg.seed)
                report = deploy_network(model, data, root / f"{row.method}.onnx",
                                        quantize=lambda m, g=genome: quantize_classifier(m, g, data))
            row.metrics = {k: getattr(report, k) for k in ("onnx_accuracy", "float_accuracy", "accuracy", "params")}
            row.metrics["predicted_bytes"] = report.predicted_bytes
            row.metrics["ort_max_abs_logit_diff"] = report.parity_max_abs["logits"]
            row.latency_ms, row.deployed_bytes = report.latency_ms, report.deployed_bytes
            row.onnx_path = report.onnx_path

    def settings(self) -> dict:
        return {"task": self.task.dataset, "epochs": self.task.budget.epochs, "final_epochs": self.final_epochs,
                "batch_size": self.task.budget.batch_size}

    def heading(self, cfg: CompareConfig) -> str:
        return (f"# NAS comparison on {self.task.dataset} (budget {cfg.evaluations} x {self.task.budget.epochs:g} "
                f"epochs, final training {self.final_epochs:g} epochs)")

    def columns(self, cfg: CompareConfig) -> tuple[Column, ...]:
        epochs = f"{self.supernet_epochs(cfg):g}"  # every method's search budget
        return (
            Column("method", lambda r: r.method),
            Column("deployed acc.", lambda r: f"{r.metrics['onnx_accuracy']:.4f}"),
            Column("float acc.", lambda r: f"{r.metrics['float_accuracy']:.4f}"),
            Column("params", lambda r: str(r.metrics["params"])),
            Column("deployed bytes", lambda r: str(r.deployed_bytes)),
            Column("latency (ms, ORT CPU)", lambda r: f"{r.latency_ms:.3f}"),
            Column("search (s)", lambda r: f"{r.search_seconds:.1f}"),
            Column("search epochs", lambda r: epochs),
            Column("evaluations", lambda r: str(r.evaluations)),
            Column("architecture", lambda r: r.architecture),
        )

    def budget_text(self, cfg: CompareConfig) -> str:
        return f"{self.task.dataset}, budget {cfg.evaluations} x {self.task.budget.epochs:g} epochs"


# -- the planner ---------------------------------------------------------------------------------------------------
class PlannerArena(Arena):
    """Budget in planner training steps; finals retrained for ``final_steps`` (0: the per-candidate steps) and timed
    interleaved over ``rounds`` rounds; the base config's hand-made backbone is the reference row."""

    batch = 1  # one child per step: the serial evaluator
    default_target_bytes = 2_500_000.0  # the tiny planner is ~2.5 MB at INT8
    quality_metric = "ade_4s"
    quality_label = "ADE@4s of the quantized planner (m, lower is better)"

    def __init__(self, task: PlannerTask, final_steps: int = 0, rounds: int = 10) -> None:
        if final_steps < 0 or rounds < 1:
            raise ValueError("need final_steps >= 0 and rounds >= 1")
        # no search starts from the hand-made genomes: each row is the method's own finding, the reference its own row
        self.task, self.final_steps, self.rounds = replace(task, seeds=()), final_steps, rounds
        self.reference = f"{task.budget.base_config} (hand-made)"

    @property
    def final_budget(self) -> PlannerBudget:
        b = self.task.budget
        return replace(b, train_steps=self.final_steps or b.train_steps)

    def supernet_steps(self, cfg: CompareConfig) -> int:
        return cfg.evaluations * self.task.budget.train_steps

    def steps_per_evaluation(self, task: ClassifyTask | PlannerTask) -> int:
        return task.budget.train_steps

    def describe(self, genome: Genome) -> str:
        return genome.summary()

    def dso_config(self, cfg: CompareConfig) -> DSOConfig:
        pre, search = split_steps(self.supernet_steps(cfg))
        return DSOConfig(pretrain_steps=pre, search_steps=search, gamma=None, prune_every=10, budget="flops",
                         seed=cfg.seed)

    def egs_config(self, cfg: CompareConfig) -> EGSConfig:
        return EGSConfig(search_steps=self.supernet_steps(cfg), seed=cfg.seed)

    def references(self) -> list[MethodRow]:
        genome = planner_template(self.task.budget.base_config)
        return [MethodRow(self.reference, genome.to_json(), self.describe(genome), None, None, None)]

    def finish(self, rows: list[MethodRow], cells: dict[str, SupernetResult], cfg: CompareConfig, root: Path,
               progress: bool) -> None:
        for row in tqdm(rows, desc="retrain finals from scratch", unit="net", disable=not progress):
            path = root / "onnx" / f"{row.method.split()[0]}.onnx"
            job = {"genome": row.genome, "data": self.task.data, "budget": asdict(self.final_budget),
                   "seed": cfg.seed, "onnx_out": str(path)}
            row.metrics = evaluate_planner(job)
            row.onnx_path = str(path)
            row.deployed_bytes = deployed_weight_bytes(onnx.load(str(path)))
        feeds = timing_feeds(build_model(load_config(self.task.budget.base_config), seed=0))
        timing = TimingConfig(repeats=max(5, self.task.budget.latency_repeats // 5))
        latency = interleaved_latency({r.method: r.onnx_path for r in rows}, feeds, timing, self.rounds)
        for r in rows:
            r.latency_ms = latency[r.method]

    def settings(self) -> dict:
        return {"data": self.task.data, "budget": asdict(self.task.budget), "final_steps": self.final_steps,
                "rounds": self.rounds}

    def heading(self, cfg: CompareConfig) -> str:
        fb = self.final_budget
        return (
            f"# NAS comparison on the planner proxy task ({cfg.evaluations} evaluations x "
            f"{self.task.budget.train_steps} steps per method; supernets {self.supernet_steps(cfg)} steps)\n\n"
            f"Data `{self.task.data}`; every final genome trained from scratch for {fb.train_steps} steps (batch "
            f"{fb.batch_size}, seed {cfg.seed}) on {fb.train_samples or 'all'} train samples; errors of the quantized "
            f"planner (the fake-quant model the Q/DQ graph reproduces) on {fb.val_samples or 'all'} val samples; "
            f"latency: median of {self.rounds} interleaved rounds of the Q/DQ graphs (ONNX Runtime CPU, 1 thread, "
            f"batch 1). DSO-NAS / EGS: cells searched inside the planner, mapped to the nearest stage genome."
        )

    def columns(self, cfg: CompareConfig) -> tuple[Column, ...]:
        return self._columns

    _columns = (
        Column("method", lambda r: r.method),
        Column("ADE@4s (m)", lambda r: f"{r.metrics['ade_4s']:.3f}", True),
        Column("minADE (m)", lambda r: f"{r.metrics['min_ade']:.3f}", True),
        Column("mode acc.", lambda r: f"{r.metrics['mode_accuracy']:.3f}", True),
        Column("FDE@4s (m)", lambda r: f"{r.metrics['fde_4s']:.3f}", True),
        Column("float ADE@4s (m)", lambda r: f"{r.metrics['float_ade_4s']:.3f}", True),
        Column("params", lambda r: str(r.metrics["params"]), True),
        Column("deployed bytes", lambda r: str(r.deployed_bytes), True),
        Column("latency (ms, ORT CPU)", lambda r: f"{r.latency_ms:.2f}", True),
        Column("search (s)", lambda r: _cost(r.search_seconds, ".0f"), True),
        Column("search train steps", lambda r: _cost(r.search_steps, "d"), True),
        Column("evaluations", lambda r: _cost(r.evaluations, "d"), True),
        Column("genome", lambda r: f"`{r.hash}`"),
        Column("architecture", lambda r: r.architecture),
    )

    def budget_text(self, cfg: CompareConfig) -> str:
        return f"planner proxy, {cfg.evaluations} x {self.task.budget.train_steps} steps"

    def panels(self, rows: list[MethodRow]) -> tuple[CostPanel, ...]:
        return (
            CostPanel("deployed weights (MB, Q/DQ ONNX)", [r.deployed_bytes / 1e6 for r in rows]),
            CostPanel("latency (ms, ONNX Runtime CPU, 1 thread, interleaved)", [r.latency_ms for r in rows]),
            CostPanel("search wall time (s)", [r.search_seconds for r in rows]),  # the reference has none
        )


# -- the comparison ------------------------------------------------------------------------------------------------
def _search(method: str, arena: Arena, cfg: CompareConfig, root: Path, progress: bool) -> tuple[MethodRow, object]:
    """Run one method's search; returns its row (before the final training) and what it found."""
    task, space, ev = arena.task, SPACES[cfg.space], cfg.evaluations
    per_eval = arena.steps_per_evaluation(task)
    t0 = time.perf_counter()
    if method == "jasq":
        jcfg = JasqConfig(max(2, ev // 2), ev, arena.batch, cfg.target_bytes, seed=cfg.seed)
        recs = run_jasq(task, jcfg, root / "jasq", SerialEvaluator(), space, progress)
        best = genome_from_json(max(recs, key=lambda r: r["objective"])["genome"])
        return _genome_row("jasq", arena, best, time.perf_counter() - t0, len(recs) * per_eval, len(recs)), best
    if method == "eat":
        half = ev // 2
        ecfg = EATConfig(max(2, half // 2), half, max(2, (ev - half) // 2), ev - half, arena.batch, cfg.target_bytes,
                         seed=cfg.seed)
        small = task.small_proxy()
        res = run_eat(small, task, ecfg, root / "eat", SerialEvaluator(), space, progress=progress)
        steps = len(res.small) * arena.steps_per_evaluation(small) + len(res.target) * per_eval
        row = _genome_row("eat", arena, res.best, time.perf_counter() - t0, steps, len(res.small) + len(res.target))
        return row, res.best
    if method == "dso":
        res = run_dso(task, arena.dso_config(cfg), progress=progress)
    elif method == "egs":
        res = run_egs(task, arena.egs_config(cfg), progress=progress)
    else:
        raise ValueError(f"unknown method {method!r}")
    out = root / method
    out.mkdir(parents=True, exist_ok=True)
    (out / "arch.json").write_text(json.dumps({k: a.to_dict() for k, a in res.archs.items()}, indent=1) + "\n")
    (out / "history.json").write_text(json.dumps(res.history, indent=1) + "\n")
    res.genome.save(out / "best.json")
    if isinstance(arena, ClassifyArena):  # the derived cell network itself is the final network
        return MethodRow(method, None, res.summary(), res.search_seconds, res.train_steps, 0), res
    text = f"{arena.describe(res.genome)} <- cells {res.summary()}"
    return MethodRow(method, res.genome.to_json(), text, res.search_seconds, res.train_steps, 0), res


def _genome_row(method: str, arena: Arena, genome: Genome, seconds: float, steps: int, evaluations: int) -> MethodRow:
    return MethodRow(method, genome.to_json(), arena.describe(genome), seconds, steps, evaluations)


def run_compare(arena: Arena, cfg: CompareConfig, results: str | Path, progress: bool = True) -> list[MethodRow]:
    """Every method's search, then the from-scratch training and measurement of every final network; writes the
    report under ``results`` and returns the rows."""
    root = Path(results)
    root.mkdir(parents=True, exist_ok=True)
    rows = arena.references()
    cells: dict[str, SupernetResult] = {}
    for method in cfg.methods:
        row, found = _search(method, arena, cfg, root, progress)
        rows.append(row)
        if isinstance(found, SupernetResult) and row.genome is None:
            cells[method] = found
        searched = [asdict(r) for r in rows if r.search_seconds is not None]
        (root / "searches.json").write_text(json.dumps(searched, indent=2) + "\n")
    arena.finish(rows, cells, cfg, root, progress)
    write_report(rows, arena, cfg, root)
    return rows


def table(rows: list[MethodRow], arena: Arena, cfg: CompareConfig) -> str:
    cols = arena.columns(cfg)
    head = "| " + " | ".join(c.header for c in cols) + " |\n|" + "|".join("---:" if c.numeric else "---" for c in cols)
    return head + "|\n" + "\n".join("| " + " | ".join(c.cell(r) for c in cols) + " |" for r in rows)


def write_report(rows: list[MethodRow], arena: Arena, cfg: CompareConfig, root: Path) -> None:
    config = {**asdict(cfg), **arena.settings()}
    report = {"task": arena.task.name, "config": config, "rows": [asdict(r) for r in rows]}
    (root / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    (root / "compare.md").write_text(f"{arena.heading(cfg)}\n\n{table(rows, arena, cfg)}\n")
    plot_methods(
        [r.method for r in rows],
        [arena.quality(r) for r in rows],
        arena.panels(rows),
        ylabel=arena.quality_label,
        title=arena.plot_title(cfg),
        path=root / "compare.png",
        highlight=arena.reference,
    )

