"""``nas-compress compare --task planner``: JASQ, DSO-NAS, EGS and EAT-NAS on the planner proxy task, one budget.

Shared budget: ``evaluations`` candidate evaluations of ``budget.train_steps`` planner training steps each for the
evolutionary searches (EAT spends half of them on its small proxy: a quarter of the training samples and half the
steps per evaluation), and the same ``evaluations * train_steps`` training batches for the DSO-NAS and EGS
supernets, whose cells are the planner's own encoder stages (``search.planner_supernets``). Every search starts from
its own initial population (no hand-made seed), so each row is the method's own finding.

Every final genome - the four methods' and the hand-made ``tiny`` backbone as the reference row - is then trained
from scratch with the same budget (``final_steps``) and seed, quantized per its precisions, exported to its deployed
Q/DQ ONNX graph and scored on the val split (``evaluate.candidate.evaluate_planner``); the graphs are then timed
interleaved in ONNX Runtime (``evaluate.latency.interleaved_latency``) so machine load drifts hit all rows alike.
Writes compare.json, compare.md and compare.png (plus per-method genomes, searches and ONNX graphs) under the
results folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import onnx
from tqdm import tqdm

from diffusiondrive_ros.data.dataset import DrivingDataset
from diffusiondrive_ros.model import build_model, load_config

from ..evaluate.candidate import evaluate_planner
from ..evaluate.evaluator import SerialEvaluator
from ..evaluate.latency import TimingConfig, interleaved_latency
from ..evaluate.planner import PlannerBudget, planner_feeds
from ..quant.onnx_qdq import deployed_weight_bytes
from ..space.genome import Genome, genome_from_json
from ..space.sampling import SPACES
from .eat import EATConfig, run_eat
from .jasq import JasqConfig, run_jasq
from .method_plot import CostPanel, plot_methods
from .planner_compare import genome_summary
from .planner_supernets import PlannerDSOConfig, PlannerEGSConfig, run_planner_dso, run_planner_egs
from .tasks import PlannerTask, planner_template

METHODS = ("jasq", "dso", "egs", "eat")
REFERENCE = "tiny (hand-made)"


@dataclass(frozen=True)
class PlannerCompareConfig:
    data: str
    budget: PlannerBudget = field(default_factory=PlannerBudget)
    evaluations: int = 6  # per evolutionary method; supernets get evaluations * train_steps batches
    final_steps: int = 0  # from-scratch training of every final genome (0: budget.train_steps)
    target_bytes: float = 2_500_000.0  # T of JASQ/EAT's ACC*(SIZE/T)^w (the tiny planner is ~2.5 MB at INT8)
    space: str = "compact"
    rounds: int = 10  # interleaved timing rounds
    seed: int = 0
    methods: tuple[str, ...] = METHODS

    def __post_init__(self) -> None:
        if self.evaluations < 4:
            raise ValueError("evaluations must be >= 4 (EAT needs two evaluations on each task)")
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {METHODS}")
        if self.final_steps < 0 or self.rounds < 1:
            raise ValueError("need final_steps >= 0 and rounds >= 1")
        if self.space not in SPACES:
            raise ValueError(f"unknown search space {self.space!r}; choose one of {sorted(SPACES)}")

    @property
    def supernet_steps(self) -> int:
        return self.evaluations * self.budget.train_steps

    @property
    def final_budget(self) -> PlannerBudget:
        return replace(self.budget, train_steps=self.final_steps or self.budget.train_steps)


@dataclass
class PlannerRow:
    method: str
    genome: str  # JSON
    architecture: str  # per-stage genome summary (plus the searched cells for DSO-NAS / EGS)
    search_seconds: float | None  # None: the hand-made reference
    search_steps: int | None  # planner training batches spent searching
    evaluations: int | None  # candidate evaluations (train + quantize + validate + export + time)
    metrics: dict = field(default_factory=dict)  # evaluate_planner's (from-scratch training)
    latency_ms: float = float("nan")  # interleaved ONNX Runtime timing of the Q/DQ graph
    deployed_bytes: int = 0
    onnx_path: str = ""

    @property
    def hash(self) -> str:
        return genome_from_json(self.genome).hash


def small_proxy(task: PlannerTask) -> PlannerTask:
    """EAT's small proxy for the planner: a quarter of the training samples and half the steps per evaluation."""
    b = task.budget
    n_train = b.train_samples or len(DrivingDataset(task.data, split="train", config=load_config(b.base_config)))
    small = replace(b, train_samples=max(b.batch_size, n_train // 4), train_steps=max(1, b.train_steps // 2))
    return PlannerTask(task.data, small, template=task.template, seeds=())


def _search(method: str, cfg: PlannerCompareConfig, task: PlannerTask, root: Path, progress: bool) -> PlannerRow:
    """Run one method's search; returns its row (genome, architecture, cost) before the from-scratch evaluation."""
    space = SPACES[cfg.space]
    ev, steps = cfg.evaluations, cfg.budget.train_steps
    t0 = time.perf_counter()
    if method == "jasq":
        jcfg = JasqConfig(max(2, ev // 2), ev, 1, cfg.target_bytes, seed=cfg.seed)
        recs = run_jasq(task, jcfg, root / "jasq", SerialEvaluator(), space, progress)
        best = genome_from_json(max(recs, key=lambda r: r["objective"])["genome"])
        cost = (time.perf_counter() - t0, len(recs) * steps, len(recs))
        return PlannerRow("jasq", best.to_json(), genome_summary(best.to_json()), *cost)
    if method == "eat":
        half = ev // 2
        ecfg = EATConfig(
            max(2, half // 2), half, max(2, (ev - half) // 2), ev - half, 1, cfg.target_bytes, seed=cfg.seed
        )
        small = small_proxy(task)
        res = run_eat(small, task, ecfg, root / "eat", SerialEvaluator(), space, progress=progress)
        cost = (
            time.perf_counter() - t0,
            len(res.small) * small.budget.train_steps + len(res.target) * steps,
            len(res.small) + len(res.target),
        )
        return PlannerRow("eat", res.best.to_json(), genome_summary(res.best.to_json()), *cost)
    if method == "dso":
        res = run_planner_dso(cfg.data, cfg.budget, PlannerDSOConfig(steps=cfg.supernet_steps, seed=cfg.seed), progress)
    elif method == "egs":
        res = run_planner_egs(cfg.data, cfg.budget, PlannerEGSConfig(steps=cfg.supernet_steps, seed=cfg.seed), progress)
    else:
        raise ValueError(f"unknown method {method!r}")
    out = root / method
    out.mkdir(parents=True, exist_ok=True)
    (out / "arch.json").write_text(json.dumps(res.archs, indent=1) + "\n")
    (out / "history.json").write_text(json.dumps(res.history, indent=1) + "\n")
    res.genome.save(out / "best.json")
    text = f"{genome_summary(res.genome.to_json())} <- cells {res.summary()}"
    return PlannerRow(method, res.genome.to_json(), text, res.search_seconds, res.train_steps, 0)


def _evaluate_final(row: PlannerRow, cfg: PlannerCompareConfig, onnx_dir: Path) -> None:
    """From-scratch training at the final budget, same seed for every row; keeps the Q/DQ graph."""
    path = onnx_dir / f"{row.method.split()[0]}.onnx"
    job = {
        "genome": row.genome,
        "data": cfg.data,
        "budget": asdict(cfg.final_budget),
        "seed": cfg.seed,
        "onnx_out": str(path),
    }
    row.metrics = evaluate_planner(job)
    row.onnx_path = str(path)
    row.deployed_bytes = deployed_weight_bytes(onnx.load(str(path)))


def run_planner_compare(cfg: PlannerCompareConfig, results: str | Path, progress: bool = True) -> list[PlannerRow]:
    """Every method's search, then the from-scratch evaluation and interleaved timing of all final genomes."""
    root = Path(results)
    root.mkdir(parents=True, exist_ok=True)
    task = PlannerTask(cfg.data, cfg.budget, seeds=())
    cfg = replace(cfg, data=task.data)  # resolved path
    reference: Genome = planner_template(cfg.budget.base_config)
    rows = [PlannerRow(REFERENCE, reference.to_json(), genome_summary(reference.to_json()), None, None, None)]
    for method in cfg.methods:
        rows.append(_search(method, cfg, task, root, progress))
        (root / "searches.json").write_text(json.dumps([asdict(r) for r in rows[1:]], indent=2) + "\n")
    onnx_dir = root / "onnx"
    for row in tqdm(rows, desc="retrain finals from scratch", unit="net", disable=not progress):
        _evaluate_final(row, cfg, onnx_dir)
    feeds = planner_feeds(build_model(load_config(cfg.budget.base_config), seed=0))
    timing = TimingConfig(repeats=max(5, cfg.budget.latency_repeats // 5))
    latency = interleaved_latency({r.method: r.onnx_path for r in rows}, feeds, timing, cfg.rounds)
    for r in rows:
        r.latency_ms = latency[r.method]
    write_report(rows, cfg, root)
    return rows


def table(rows: list[PlannerRow]) -> str:
    head = (
        "| method | ADE@4s (m) | minADE (m) | mode acc. | FDE@4s (m) | float ADE@4s (m) | params | deployed bytes | "
        "latency (ms, ORT CPU) | search (s) | search train steps | evaluations | genome | architecture |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n"
    )

    def cost(v: float | int | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    return head + "\n".join(
        f"| {r.method} | {r.metrics['ade_4s']:.3f} | {r.metrics['min_ade']:.3f} | {r.metrics['mode_accuracy']:.3f} | "
        f"{r.metrics['fde_4s']:.3f} | {r.metrics['float_ade_4s']:.3f} | {r.metrics['params']} | {r.deployed_bytes} | "
        f"{r.latency_ms:.2f} | {cost(r.search_seconds, '.0f')} | {cost(r.search_steps, 'd')} | "
        f"{cost(r.evaluations, 'd')} | `{r.hash}` | {r.architecture} |"
        for r in rows
    )


def write_report(rows: list[PlannerRow], cfg: PlannerCompareConfig, root: Path) -> None:
    fb = cfg.final_budget
    (root / "compare.json").write_text(
        json.dumps({"task": "planner", "config": asdict(cfg), "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    (root / "compare.md").write_text(
        f"# NAS comparison on the planner proxy task ({cfg.evaluations} evaluations x {cfg.budget.train_steps} "
        f"steps per method; supernets {cfg.supernet_steps} steps)\n\n"
        f"Data `{cfg.data}`; every final genome trained from scratch for {fb.train_steps} steps (batch "
        f"{fb.batch_size}, seed {cfg.seed}) on {fb.train_samples or 'all'} train samples; errors of the quantized "
        f"planner (the fake-quant model the Q/DQ graph reproduces) on {fb.val_samples or 'all'} val samples; "
        f"latency: median of {cfg.rounds} interleaved rounds of the Q/DQ graphs (ONNX Runtime CPU, 1 thread, batch "
        f"1). DSO-NAS / EGS: cells searched inside the planner, mapped to the nearest stage genome.\n\n"
        f"{table(rows)}\n"
    )
    plot(rows, root / "compare.png", f"planner proxy, {cfg.evaluations} x {cfg.budget.train_steps} steps")


def plot(rows: list[PlannerRow], path: Path, title: str) -> None:
    panels = (
        CostPanel("deployed weights (MB, Q/DQ ONNX)", [r.deployed_bytes / 1e6 for r in rows]),
        CostPanel("latency (ms, ONNX Runtime CPU, 1 thread, interleaved)", [r.latency_ms for r in rows]),
        CostPanel("search wall time (s)", [r.search_seconds for r in rows]),  # the reference has none
    )
    plot_methods([r.method for r in rows], [r.metrics["ade_4s"] for r in rows], panels,
                 ylabel="ADE@4s of the quantized planner (m, lower is better)",
                 title=f"JASQ vs DSO-NAS vs EGS vs EAT-NAS vs the hand-made tiny backbone ({title})", path=path,
                 highlight=REFERENCE)
