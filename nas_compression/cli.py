"""``nas-compress``: run searches, compare the methods, validate latency tables, deploy a genome into the planner.

nas-compress search jasq --task mnist --budget 64 --population 16 --out runs/jasq-mnist
nas-compress search jasq --task planner --data runs/data --budget 12 --population 6 --out runs/jasq-planner
nas-compress search dso --task digits --search-epochs 3 --out runs/dso-digits    (egs likewise; eat: --small-budget)
torchrun --standalone --nproc_per_node 2 -m nas_compression.cli search egs --task mnist --out runs/egs-ddp
nas-compress compare --task digits --budget 8 --out runs/compare-digits    (--task planner --data DIR likewise)
nas-compress retrain-winners --results runs/jasq-planner --top 1
nas-compress latency --task mnist --samples 5 --out runs/latency
nas-compress export --genome runs/jasq-planner/best.json --config tiny --out models/nas-tiny
torchrun --standalone --nproc_per_node 2 -m nas_compression.cli gradcheck --out ddp.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

METHODS = ("jasq", "dso", "egs", "eat")


# -- arguments -----------------------------------------------------------------------------------------------------
def _planner_budget_args(g: argparse._ArgumentGroup, train_steps: int, latency_repeats: int) -> None:
    """The planner task's per-candidate budget, shared by ``search`` and ``compare``."""
    g.add_argument("--data", help="a `diffusiondrive data generate` folder (train/val scene split)")
    g.add_argument("--base-config", default="tiny", help="planner config whose encoders the genomes replace")
    g.add_argument("--train-steps", type=int, default=train_steps, help="planner training steps per candidate")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--lr", type=float, default=6e-4)
    g.add_argument("--train-samples", type=int, default=1000, help="train subset size (0: the whole split)")
    g.add_argument("--val-samples", type=int, default=200, help="val subset size (0: the whole split)")
    g.add_argument(
        "--quality",
        choices=["ade_4s", "min_ade"],
        default="ade_4s",
        help="error behind the quality 1/(1+error): the planner's L2 (ade_4s) or minADE over modes",
    )
    g.add_argument(
        "--latency-repeats", type=int, default=latency_repeats, help="timed ONNX Runtime runs per candidate"
    )


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", choices=METHODS, help="search method")
    p.add_argument(
        "--task",
        choices=["mnist", "digits", "planner"],
        default="mnist",
        help="task: MNIST-5k / 8x8 digits classification, or the planner (needs --data)",
    )
    p.add_argument("--budget", type=int, default=64, help="evaluated candidates in all (initial population included)")
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--batch", type=int, default=2, help="children per step (evaluated in parallel)")
    p.add_argument(
        "--selection",
        choices=["objective", "nsga2"],
        default="objective",
        help="objective: the paper's ACC*(SIZE/T)^w; nsga2: Pareto rank + crowding over acc/size/latency",
    )
    p.add_argument("--target-bytes", type=float, default=50_000, help="T in ACC*(SIZE/T)^w")
    p.add_argument("--w", type=float, default=-0.07, help="w in ACC*(SIZE/T)^w (negative)")
    p.add_argument(
        "--space",
        choices=["default", "compact"],
        default="default",
        help="stage choices: default (kernels 3-7, depth 1-3, widths x0.5-2) or compact (kernels 3/5, depth 1-2, "
        "widths x0.5-1.5: cheap planner searches)",
    )
    p.add_argument("--policy-only", action="store_true", help="fixed architecture (the template); search precisions")
    p.add_argument("--epochs", type=float, default=1.0, help="training epochs per candidate (classification)")
    p.add_argument("--qat-epochs", type=float, default=0.0, help="QAT fine-tune epochs after quantization")
    p.add_argument("--train-subset", type=int, default=None, help="train on the first N images only")
    _planner_budget_args(p.add_argument_group("planner task (--task planner)"), 200, 50)
    p.add_argument("--evaluator", choices=["process", "serial", "ray"], default="process")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results directory (re-run the same command to resume)")
    g = p.add_argument_group("DSO-NAS / EGS (supernets on --task mnist|digits; torchrun-aware)")
    g.add_argument("--search-epochs", type=float, default=3.0, help="supernet search epochs")
    g.add_argument("--retrain-epochs", type=float, default=3.0, help="retraining of the derived network")
    g.add_argument("--channels", type=int, default=8)
    g.add_argument("--gamma", type=float, default=0.1, help="DSO: L1 weight on lambda")
    g.add_argument("--dso-budget", choices=["none", "flops", "latency"], default="none", help="DSO: scale gamma")
    g.add_argument("--m", type=int, default=2, help="EGS: connections per node")
    g.add_argument("--threads", type=int, default=1, help="torch threads per process")
    g = p.add_argument_group("EAT-NAS (--budget is the target budget; the small proxy gets --small-budget)")
    g.add_argument("--small-budget", type=int, default=8)
    g.add_argument("--scratch-budget", type=int, default=0, help="also search the target from scratch, report cost")


def _compare_args(p: argparse.ArgumentParser) -> None:
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
    g = p.add_argument_group("planner task (--task planner; --epochs/--final-epochs do not apply)")
    _planner_budget_args(g, 60, 20)
    g.add_argument("--final-steps", type=int, default=0, help="from-scratch steps of every final genome (0: same)")
    g.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds of the final graphs")
    g.add_argument("--space", choices=["default", "compact"], default="compact", help="genome stage choices")


def _retrain_winners_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, help="a planner search's results directory")
    p.add_argument("--top", type=int, default=1, help="challengers to retrain beside the references")
    p.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    p.add_argument("--seed", type=int, default=0, help="one training seed for every row")


def _latency_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=["mnist", "digits"], default="mnist")
    p.add_argument("--samples", type=int, default=5, help="random sample genomes to validate the table on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for latency_table.json and validation.json")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genome", required=True, help="genome JSON (e.g. best.json of a planner search)")
    p.add_argument("--config", default="tiny", help="base planner config whose encoders the genome replaces")
    p.add_argument("--checkpoint", help="start from these planner weights (same encoders)")
    p.add_argument("--data", help="a `diffusiondrive data generate` folder for fine-tuning and calibration")
    p.add_argument("--train-steps", type=int, default=0, help="fine-tune steps on --data before quantization")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model directory to write")


def _gradcheck_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="file for the gradients (torch.save); rank 0 writes it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas-compress", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _search_args(sub.add_parser("search", help="run or resume a search"))
    _compare_args(sub.add_parser("compare", help="JASQ, DSO-NAS, EGS and EAT-NAS on one task: table + plot"))
    _retrain_winners_args(
        sub.add_parser(
            "retrain-winners",
            help="retrain a planner search's winners and its hand-made references from scratch, re-time interleaved",
        )
    )
    _latency_args(sub.add_parser("latency", help="build a latency table and validate it on sample genomes"))
    _export_args(sub.add_parser("export", help="deploy a genome into the planner: model dir with Q/DQ ONNX"))
    _gradcheck_args(
        sub.add_parser("gradcheck", help="DSO-NAS/EGS supernet gradients (run under torchrun and without, compare)")
    )
    return parser


# -- helpers -------------------------------------------------------------------------------------------------------
def _error(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def planner_task(args: argparse.Namespace):  # noqa: ANN201 - tasks.planner.PlannerTask
    """The planner task of the ``--data/--base-config/--train-steps/...`` options."""
    from .tasks.planner import PlannerBudget, PlannerTask

    if not args.data:
        raise ValueError("--task planner needs --data (a `diffusiondrive data generate` folder)")
    budget = PlannerBudget(
        base_config=args.base_config,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        train_samples=args.train_samples,
        val_samples=args.val_samples,
        quality_metric=args.quality,
        latency_repeats=args.latency_repeats,
    )
    return PlannerTask(args.data, budget)


def _dist_context():  # noqa: ANN202 - train.distributed.DistContext
    """The process group torchrun describes (the GPU of the local rank if there is one); one CPU process otherwise."""
    import torch

    from diffusiondrive_ros.train.distributed import launched_by_torchrun, setup_distributed

    return setup_distributed("cuda" if launched_by_torchrun() and torch.cuda.is_available() else "cpu")


# -- commands ------------------------------------------------------------------------------------------------------
def run_search(args: argparse.Namespace) -> int:
    from .tasks.classify import CellLayout, ClassifyBudget, ClassifyTask

    if args.method != "jasq" and args.task == "planner":
        return _error(
            ValueError(
                f"`search {args.method}` runs on --task mnist|digits; on the planner it runs inside "
                "`nas-compress compare --task planner --methods ...` (see docs/nas.md)"
            )
        )
    try:
        if args.task == "planner":
            task = planner_task(args)
        else:
            budget = ClassifyBudget(epochs=args.epochs, qat_epochs=args.qat_epochs, train_subset=args.train_subset)
            task = ClassifyTask(args.task, budget, cells=CellLayout(channels=args.channels))
    except (FileNotFoundError, ValueError) as err:
        return _error(err)
    if args.method in ("dso", "egs"):
        return _search_cells(args, task)
    if args.method == "eat":
        return _search_eat(args, task)
    return _search_jasq(args, task)


def _search_jasq(args: argparse.Namespace, task) -> int:  # noqa: ANN001 - a tasks.base.Task
    from .measure.evaluators import make_evaluator
    from .space.sampling import SPACES
    from .strategies.jasq import JasqConfig, run_jasq
    from .strategies.pareto import front_table, pareto_front

    cfg = JasqConfig(
        population=args.population,
        budget=args.budget,
        batch=args.batch,
        target_bytes=args.target_bytes,
        w=args.w,
        selection=args.selection,
        policy_only=args.policy_only,
        seed=args.seed,
    )
    evaluator = make_evaluator(args.evaluator, args.workers, args.ray_address)
    records = run_jasq(task, cfg, args.out, evaluator, SPACES[args.space])
    print(front_table(pareto_front(records), task.report_metrics))
    if args.task == "planner":
        from .experiments.reference_report import write_planner_report

        print(write_planner_report(records, task.seeds, args.out))
    print(f"results: {args.out} (candidates.jsonl, front.png, front.md, best.json)")
    return 0


def _search_eat(args: argparse.Namespace, task) -> int:  # noqa: ANN001 - a tasks.base.Task
    import torch

    from .measure.evaluators import make_evaluator
    from .strategies.eat import EATConfig, run_eat

    torch.set_num_threads(args.threads)
    cfg = EATConfig(
        small_population=max(2, args.small_budget // 2),
        small_budget=args.small_budget,
        target_population=min(args.population, args.budget),
        target_budget=args.budget,
        batch=args.batch,
        target_bytes=args.target_bytes,
        w=args.w,
        seed=args.seed,
    )
    evaluator = make_evaluator(args.evaluator, args.workers, args.ray_address)
    res = run_eat(task.small_proxy(), task, cfg, args.out, evaluator, scratch_budget=args.scratch_budget)
    print(f"basic architecture {res.basic.hash} -> best on {task.name} {res.best.hash}; results in {args.out}")
    if res.cost:
        print(json.dumps(res.cost, indent=2))
    return 0


def _search_cells(args: argparse.Namespace, task) -> int:  # noqa: ANN001 - tasks.classify.ClassifyTask
    """DSO-NAS / EGS on a classification task; joins a torchrun process group, only rank 0 writes.

    Results: ``arch.json`` (the derived cells), ``history.json``, ``model.onnx`` (INT8 Q/DQ of the retrained cells)
    with ``deploy.json``, and ``genome.json`` (the nearest stage genome, for the genome deploy path)."""
    import torch

    from diffusiondrive_ros.train.distributed import cleanup

    from .tasks.classify import deploy_network, load_dataset

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    ctx = _dist_context()
    retrain_steps = task.epoch_steps(args.retrain_epochs)
    if args.method == "dso":
        from .strategies.dso import DSOConfig, run_dso

        cfg = DSOConfig(
            pretrain_steps=task.epoch_steps(args.search_epochs / 3),
            search_steps=task.epoch_steps(2 * args.search_epochs / 3, half=True),
            retrain_steps=retrain_steps,
            gamma=args.gamma,
            budget=args.dso_budget,
            seed=args.seed,
        )
        res = run_dso(task, cfg, ctx)
    else:
        from .strategies.egs import EGSConfig, run_egs

        cfg = EGSConfig(
            search_steps=task.epoch_steps(args.search_epochs), retrain_steps=retrain_steps, m=args.m, seed=args.seed
        )
        res = run_egs(task, cfg, ctx)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        res.arch.save(out / "arch.json")
        res.genome.save(out / "genome.json")
        report = deploy_network(res.model, load_dataset(task.dataset), out / "model.onnx")  # calibrated on all images
        summary = {
            "config": asdict(cfg),
            "task": {"dataset": task.dataset, "budget": asdict(task.budget), "cells": asdict(task.cells)},
            "world_size": ctx.world_size,
            "search_seconds": res.search_seconds,
            "retrain_seconds": res.retrain_seconds,
            "deploy": report.to_dict(),
        }
        (out / "history.json").write_text(json.dumps(res.history, indent=1) + "\n")
        (out / "deploy.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(
            f"{args.method}: deployed accuracy {report.onnx_accuracy:.4f}, {report.params} params, "
            f"{report.deployed_bytes} B, {report.latency_ms:.3f} ms; results in {out}"
        )
    cleanup(ctx)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    import torch

    from .experiments.compare import ClassifyArena, CompareConfig, PlannerArena, run_compare, table
    from .tasks.classify import ClassifyBudget, ClassifyTask

    torch.set_num_threads(args.threads)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        if args.task == "planner":
            arena = PlannerArena(planner_task(args), args.final_steps, args.rounds)
            space = args.space
        else:
            task = ClassifyTask(args.task, ClassifyBudget(epochs=args.epochs))
            arena, space = ClassifyArena(task, args.final_epochs), "default"
        target = args.target_bytes or arena.default_target_bytes
        cfg = CompareConfig(args.budget, target, space, args.seed, methods)
        rows = run_compare(arena, cfg, args.out)
    except (FileNotFoundError, ValueError) as err:
        return _error(err)
    print(table(rows, arena, cfg))
    print(f"results: {args.out} (compare.md, compare.json, compare.png)")
    return 0


def run_retrain_winners(args: argparse.Namespace) -> int:
    from .experiments.retrain_winners import COMPARE_FILE, retrain_winners

    try:
        retrain_winners(args.results, top=args.top, seed=args.seed, rounds=args.rounds)
    except (FileNotFoundError, ValueError) as err:
        return _error(err)
    print((Path(args.results) / COMPARE_FILE).read_text())
    return 0


def run_latency(args: argparse.Namespace) -> int:
    import numpy as np

    from .measure.latency import LatencyTable
    from .space.sampling import SearchSpace, random_genome
    from .tasks.classify import classify_template, load_dataset, validate_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    genomes = [random_genome(rng, SearchSpace(), classify_template(args.task)) for _ in range(args.samples)]
    table = LatencyTable.load(out / "latency_table.json")
    rows = validate_table(table, genomes, load_dataset(args.task).image_size)
    table.save()
    (out / "validation.json").write_text(json.dumps(rows, indent=2))
    for r in rows:
        print(
            f"{r['genome']}: predicted {r['predicted_ms']:.3f} ms, measured {r['measured_ms']:.3f} ms, "
            f"error {100 * r['relative_error']:+.1f} %"
        )
    print(f"mean |error| {100 * float(np.mean([abs(r['relative_error']) for r in rows])):.1f} %")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .deploy import deploy_genome
    from .space.genome import DeployabilityError, Genome

    try:
        genome = Genome.load(args.genome)
        report = deploy_genome(
            genome,
            args.config,
            args.out,
            checkpoint=args.checkpoint,
            data_dir=args.data,
            train_steps=args.train_steps,
            seed=args.seed,
        )
    except DeployabilityError as err:
        return _error(err)
    print(
        f"wrote {report.model_dir}: planner.onnx ({report.deployed_bytes} deployed weight bytes, "
        f"Q/DQ {report.qdq_nodes}), parity {report.parity_max_abs}"
    )
    return 0


def run_gradcheck(args: argparse.Namespace) -> int:
    import torch

    from diffusiondrive_ros.train.distributed import cleanup

    from .experiments.ddp_gradcheck import supernet_gradients

    torch.set_num_threads(1)
    ctx = _dist_context()
    grads = supernet_gradients(ctx)
    if ctx.is_main:
        torch.save(grads, args.out)
    cleanup(ctx)
    return 0


COMMANDS = {
    "search": run_search,
    "compare": run_compare,
    "retrain-winners": run_retrain_winners,
    "latency": run_latency,
    "export": run_export,
    "gradcheck": run_gradcheck,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
