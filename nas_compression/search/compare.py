"""``nas-compress compare``: JASQ, DSO-NAS, EGS and EAT-NAS on one proxy task and one budget, one table, one plot.

Classification tasks (this module): the budget is counted in training epochs over the task's training set:
``budget`` candidate evaluations of ``epochs`` each for the evolutionary searches (EAT splits them between its small
proxy and the target), and the same ``budget * epochs`` epochs of supernet training for DSO-NAS and EGS. Every
method's final network is then retrained from scratch with the same ``final_epochs``, quantized (genomes: their own
precisions; cells: INT8), exported to Q/DQ ONNX and measured in ONNX Runtime, so the columns are comparable. The
planner task (budget in planner training steps, quality = the planner's validation error) is
:mod:`.compare_on_planner`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..evaluate.classify import ClassifyBudget, ClassifyData, build_classifier, load_dataset, quantize_classifier
from ..evaluate.evaluator import Evaluator, SerialEvaluator
from ..space.genome import Genome, genome_from_json
from ..space.sampling import SearchSpace
from ..supernet.deploy import DeployReport, deploy_network
from ..supernet.train import retrain
from .dso import DSOConfig, run_dso
from .eat import EATConfig, run_eat
from .egs import EGSConfig, run_egs
from .jasq import JasqConfig, run_jasq
from .method_plot import CostPanel, plot_methods
from .tasks import ClassifyTask

METHODS = ("jasq", "dso", "egs", "eat")


@dataclass(frozen=True)
class CompareConfig:
    task: str = "digits"
    budget: int = 8  # candidate evaluations (evolutionary); budget * epochs supernet epochs
    epochs: float = 1.0
    final_epochs: float = 3.0
    batch_size: int = 64
    target_bytes: float = 20_000.0
    seed: int = 0
    methods: tuple[str, ...] = METHODS

    def __post_init__(self) -> None:
        if self.budget < 4:
            raise ValueError("budget must be >= 4 (EAT needs two evaluations on each task)")
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown method(s) {sorted(unknown)}; choose from {METHODS}")


@dataclass
class MethodRow:
    method: str
    architecture: str  # a genome hash or a cell summary
    search_seconds: float
    search_epochs: float
    evaluations: int
    deploy: DeployReport


def small_proxy(task: str, budget: ClassifyBudget) -> ClassifyTask:
    """EAT's small proxy: 8x8 digits for MNIST (low resolution); a quarter of the training images for digits."""
    if task == "mnist":
        return ClassifyTask("digits", budget)
    return ClassifyTask("digits", ClassifyBudget(**{**asdict(budget), "train_subset": 360}))


def _genome_row(name: str, genome: Genome, data: ClassifyData, cfg: CompareConfig, out: Path, **cost) -> MethodRow:
    model = build_classifier(genome, cfg.seed)
    model = retrain(model, data, cfg.final_epochs, 0.05, cfg.batch_size, cfg.seed)
    report = deploy_network(model, data, out / f"{name}.onnx", quantize=lambda m: quantize_classifier(m, genome, data))
    return MethodRow(name, genome.hash, deploy=report, **cost)


def _cell_row(name: str, model: torch.nn.Module, arch, data: ClassifyData, cfg: CompareConfig, out: Path, **cost):  # noqa: ANN001, ANN202
    (out / f"{name}_arch.json").write_text(json.dumps(arch.to_dict(), indent=1) + "\n")
    torch.manual_seed(cfg.seed)
    fresh = type(model)(arch, searchable=False) if name == "dso" else type(model)(arch)
    fresh = retrain(fresh, data, cfg.final_epochs, 0.05, cfg.batch_size, cfg.seed)
    summary = f"{sum(1 for p in fresh.parameters())} tensors"
    if name == "dso":
        summary = f"{arch.num_ops()} ops / {arch.num_edges()} edges"
    else:
        summary = " ".join("+".join(f"{op}@{p}" for p, op in node) for node in arch.cell)
    return MethodRow(name, summary, deploy=deploy_network(fresh, data, out / f"{name}.onnx"), **cost)


def run_compare(cfg: CompareConfig, results: str | Path, evaluator: Evaluator | None = None) -> list[MethodRow]:
    """Run every method, write compare.json / compare.md / compare.png under ``results``; returns the rows."""
    root = Path(results)
    root.mkdir(parents=True, exist_ok=True)
    data = load_dataset(cfg.task)
    budget = ClassifyBudget(epochs=cfg.epochs, batch_size=cfg.batch_size)
    task = ClassifyTask(cfg.task, budget)
    space = SearchSpace()
    rows = []
    supernet_epochs = cfg.budget * cfg.epochs
    for method in cfg.methods:
        t0 = time.perf_counter()
        if method == "jasq":
            jcfg = JasqConfig(max(2, cfg.budget // 2), cfg.budget, 2, cfg.target_bytes, seed=cfg.seed)
            recs = run_jasq(task, jcfg, root / "jasq", evaluator or SerialEvaluator(), space, progress=False)
            best = genome_from_json(max(recs, key=lambda r: r["objective"])["genome"])
            cost = {"search_seconds": time.perf_counter() - t0, "search_epochs": supernet_epochs}
            rows.append(_genome_row("jasq", best, data, cfg, root, evaluations=len(recs), **cost))
        elif method == "eat":
            half = cfg.budget // 2
            ecfg = EATConfig(
                max(2, half // 2), half, max(2, (cfg.budget - half) // 2), cfg.budget - half, 2, cfg.target_bytes
            )
            ecfg = EATConfig(**{**asdict(ecfg), "seed": cfg.seed})
            res = run_eat(small_proxy(cfg.task, budget), task, ecfg, root / "eat", evaluator, space)
            cost = {"search_seconds": time.perf_counter() - t0, "search_epochs": supernet_epochs}
            rows.append(_genome_row("eat", res.best, data, cfg, root, evaluations=len(res.small + res.target), **cost))
        elif method == "dso":
            dcfg = DSOConfig(
                pretrain_epochs=supernet_epochs / 3,
                search_epochs=2 * supernet_epochs / 3,
                retrain_epochs=0,
                batch_size=cfg.batch_size,
                gamma=0.1,
                budget="flops",
                seed=cfg.seed,
            )
            res = run_dso(data, dcfg, progress=False)
            cost = {"search_seconds": time.perf_counter() - t0, "search_epochs": supernet_epochs, "evaluations": 0}
            rows.append(_cell_row("dso", res.model, res.arch, data, cfg, root, **cost))
        elif method == "egs":
            gcfg = EGSConfig(search_epochs=supernet_epochs, retrain_epochs=0, batch_size=cfg.batch_size, seed=cfg.seed)
            res = run_egs(data, gcfg, progress=False)
            cost = {"search_seconds": time.perf_counter() - t0, "search_epochs": supernet_epochs, "evaluations": 0}
            rows.append(_cell_row("egs", res.model, res.arch, data, cfg, root, **cost))
    write_report(rows, cfg, root)
    return rows


def table(rows: list[MethodRow]) -> str:
    head = (
        "| method | deployed acc. | float acc. | params | deployed bytes | latency (ms, ORT CPU) | search (s) "
        "| search epochs | evaluations | architecture |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(
        f"| {r.method} | {r.deploy.onnx_accuracy:.4f} | {r.deploy.float_accuracy:.4f} | {r.deploy.params} | "
        f"{r.deploy.deployed_bytes} | {r.deploy.latency_ms:.3f} | {r.search_seconds:.1f} | {r.search_epochs:g} | "
        f"{r.evaluations} | {r.architecture} |"
        for r in rows
    )


def write_report(rows: list[MethodRow], cfg: CompareConfig, root: Path) -> None:
    data = [{**asdict(r), "deploy": r.deploy.to_dict()} for r in rows]
    (root / "compare.json").write_text(json.dumps({"config": asdict(cfg), "rows": data}, indent=2) + "\n")
    (root / "compare.md").write_text(
        f"# NAS comparison on {cfg.task} (budget {cfg.budget} x {cfg.epochs:g} epochs, "
        f"final training {cfg.final_epochs:g} epochs)\n\n{table(rows)}\n"
    )
    plot(rows, root / "compare.png", f"{cfg.task}, budget {cfg.budget} x {cfg.epochs:g} epochs")


def plot(rows: list[MethodRow], path: Path, title: str) -> None:
    panels = (
        CostPanel("deployed weight bytes", [r.deploy.deployed_bytes for r in rows], log_scale=True),
        CostPanel("latency (ms, ONNX Runtime CPU, 1 thread)", [r.deploy.latency_ms for r in rows], log_scale=True),
        CostPanel("search wall time (s)", [r.search_seconds for r in rows]),
    )
    plot_methods([r.method for r in rows], [r.deploy.onnx_accuracy for r in rows], panels,
                 ylabel="deployed accuracy (ONNX Runtime)", title=f"JASQ vs DSO-NAS vs EGS vs EAT-NAS ({title})",
                 path=path)


def add_arguments(p) -> None:  # noqa: ANN001 - argparse parser
    p.add_argument("--task", choices=["mnist", "digits", "planner"], default="digits")
    p.add_argument(
        "--budget",
        type=int,
        default=8,
        help="candidate evaluations per evolutionary method; supernets get budget x epochs (planner: x train steps)",
    )
    p.add_argument("--epochs", type=float, default=1.0, help="training epochs per candidate evaluation")
    p.add_argument("--final-epochs", type=float, default=3.0, help="from-scratch training of every final network")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument(
        "--target-bytes", type=float, default=None, help="T of ACC*(SIZE/T)^w (default 20000; planner 2.5e6)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", required=True, help="folder for compare.md, compare.json, compare.png, ONNX files")
    g = p.add_argument_group("planner proxy task (--task planner; --epochs/--final-epochs do not apply)")
    g.add_argument("--data", help="a `diffusiondrive data generate` folder (train/val scene split)")
    g.add_argument("--base-config", default="tiny", help="planner config whose encoders are searched")
    g.add_argument("--train-steps", type=int, default=60, help="planner training steps per candidate evaluation")
    g.add_argument("--final-steps", type=int, default=0, help="from-scratch steps of every final genome (0: same)")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--lr", type=float, default=6e-4)
    g.add_argument("--train-samples", type=int, default=1000, help="train subset size (0: the whole split)")
    g.add_argument("--val-samples", type=int, default=200, help="val subset size (0: the whole split)")
    g.add_argument("--quality", choices=["ade_4s", "min_ade"], default="ade_4s", help="error behind 1/(1+error)")
    g.add_argument("--latency-repeats", type=int, default=20, help="timed ONNX Runtime runs per candidate")
    g.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds of the final graphs")
    g.add_argument("--space", choices=["default", "compact"], default="compact", help="genome stage choices")


def _methods(args) -> tuple[str, ...]:  # noqa: ANN001
    return tuple(m.strip() for m in args.methods.split(",") if m.strip())


def run_planner(args) -> int:  # noqa: ANN001
    """The planner branch of ``compare`` (search.compare_on_planner)."""
    import sys

    from ..evaluate.planner import planner_budget_from_args
    from .compare_on_planner import PlannerCompareConfig, run_planner_compare, table

    if not args.data:
        print("error: --task planner needs --data (a `diffusiondrive data generate` folder)", file=sys.stderr)
        return 2
    try:
        budget = planner_budget_from_args(args)
        cfg = PlannerCompareConfig(
            args.data,
            budget,
            evaluations=args.budget,
            final_steps=args.final_steps,
            target_bytes=args.target_bytes or PlannerCompareConfig.target_bytes,
            space=args.space,
            rounds=args.rounds,
            seed=args.seed,
            methods=_methods(args),
        )
        rows = run_planner_compare(cfg, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table(rows))
    print(f"results: {args.out} (compare.md, compare.json, compare.png, onnx/)")
    return 0


def run(args) -> int:  # noqa: ANN001
    torch.set_num_threads(args.threads)
    if args.task == "planner":
        return run_planner(args)
    cfg = CompareConfig(
        args.task,
        args.budget,
        args.epochs,
        args.final_epochs,
        target_bytes=args.target_bytes or CompareConfig.target_bytes,
        seed=args.seed,
        methods=_methods(args),
    )
    rows = run_compare(cfg, args.out)
    print(table(rows))
    print(f"results: {args.out} (compare.md, compare.json, compare.png)")
    return 0
