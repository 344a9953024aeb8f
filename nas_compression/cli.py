"""``nas-compress``: run JASQ searches, validate latency tables, and deploy a genome into the planner.

nas-compress search jasq --task mnist --budget 64 --population 16 --out runs/jasq-mnist
nas-compress search jasq --task planner --data runs/data --budget 12 --population 6 --out runs/jasq-planner
nas-compress latency --task mnist --samples 5 --out runs/latency
nas-compress export --genome runs/jasq-planner/best.json --config tiny --out models/nas-tiny
nas-compress search dso --task digits --search-epochs 3 --out runs/dso-digits    (egs likewise)
torchrun --standalone --nproc_per_node 2 -m nas_compression.cli search egs --task mnist --out runs/egs-ddp
nas-compress compare --task digits --budget 8 --out runs/compare-digits
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", choices=["jasq", "dso", "egs", "eat"], help="search method")
    p.add_argument(
        "--task",
        choices=["mnist", "digits", "planner"],
        default="mnist",
        help="proxy task: MNIST-5k / 8x8 digits classification, or the planner (needs --data)",
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
    p.add_argument("--epochs", type=float, default=1.0, help="proxy training epochs per candidate")
    p.add_argument("--qat-epochs", type=float, default=0.0, help="QAT fine-tune epochs after quantization")
    p.add_argument("--train-subset", type=int, default=None, help="train on the first N images only")
    planner = p.add_argument_group("planner proxy task (--task planner)")
    planner.add_argument("--data", help="a `diffusiondrive data generate` folder (train/val scene split)")
    planner.add_argument("--base-config", default="tiny", help="planner config whose encoders the genomes replace")
    planner.add_argument("--train-steps", type=int, default=200, help="training steps per candidate")
    planner.add_argument("--batch-size", type=int, default=8)
    planner.add_argument("--lr", type=float, default=6e-4)
    planner.add_argument("--train-samples", type=int, default=1000, help="train subset size (0: the whole split)")
    planner.add_argument("--val-samples", type=int, default=200, help="val subset size (0: the whole split)")
    planner.add_argument(
        "--quality",
        choices=["ade_4s", "min_ade"],
        default="ade_4s",
        help="error behind the quality 1/(1+error): the planner's L2 (ade_4s) or minADE over modes",
    )
    planner.add_argument("--latency-repeats", type=int, default=50, help="timed ONNX Runtime runs per candidate")
    p.add_argument("--evaluator", choices=["process", "serial", "ray"], default="process")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results directory (re-run the same command to resume)")
    g = p.add_argument_group("DSO-NAS / EGS (supernets; torchrun-aware)")
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


def _compare_planner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, help="a planner search's results directory")
    p.add_argument("--top", type=int, default=1, help="challengers to retrain beside the references")
    p.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    p.add_argument("--seed", type=int, default=0, help="one training seed for every row")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas-compress", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _search_args(sub.add_parser("search", help="run or resume a search"))
    _latency_args(sub.add_parser("latency", help="build a latency table and validate it on sample genomes"))
    _export_args(sub.add_parser("export", help="deploy a genome into the planner: model dir with Q/DQ ONNX"))
    _compare_planner_args(
        sub.add_parser(
            "compare-planner",
            help="retrain a planner search's winners and the hand-made references from scratch, re-time interleaved",
        )
    )
    from .search import compare

    compare.add_arguments(sub.add_parser("compare", help="JASQ, DSO-NAS, EGS and EAT-NAS on one task: table + plot"))
    return parser


def run_search(args: argparse.Namespace) -> int:
    from .evaluate.classify import ClassifyBudget
    from .evaluate.evaluator import make_evaluator
    from .search.jasq import JasqConfig, run_jasq
    from .search.pareto import front_table, pareto_front
    from .search.tasks import ClassifyTask
    from .space.sampling import SPACES

    if args.method in ("dso", "egs", "eat"):
        from .search.cells_cli import run_cell_search

        return run_cell_search(args)
    if args.task == "planner":
        try:
            task = planner_task(args)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        task = ClassifyTask(
            args.task, ClassifyBudget(epochs=args.epochs, qat_epochs=args.qat_epochs, train_subset=args.train_subset)
        )
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
    print(front_table(pareto_front(records), getattr(task, "report_metrics", ())))
    if args.task == "planner":
        from .search.planner_report import write_planner_report

        print(write_planner_report(records, task.seeds, args.out))
    print(f"results: {args.out} (candidates.jsonl, front.png, front.md, best.json)")
    return 0


def planner_task(args: argparse.Namespace):  # noqa: ANN201 - search.tasks.PlannerTask
    from .evaluate.planner import planner_budget_from_args
    from .search.tasks import PlannerTask

    if not args.data:
        raise ValueError("--task planner needs --data (a `diffusiondrive data generate` folder)")
    return PlannerTask(args.data, planner_budget_from_args(args))


def run_latency(args: argparse.Namespace) -> int:
    import numpy as np

    from .evaluate.classify import load_dataset
    from .evaluate.latency import LatencyTable, validate_table
    from .search.tasks import classify_template
    from .space.sampling import SearchSpace, random_genome

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
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.model_dir}: planner.onnx ({report.deployed_bytes} deployed weight bytes, "
        f"Q/DQ {report.qdq_nodes}), parity {report.parity_max_abs}"
    )
    return 0


def run_compare_planner(args: argparse.Namespace) -> int:
    from .search.planner_compare import COMPARE_FILE, compare_planner

    try:
        compare_planner(args.results, top=args.top, seed=args.seed, rounds=args.rounds)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((Path(args.results) / COMPARE_FILE).read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.command == "compare":
        from .search import compare

        return compare.run(args)
    commands = {
        "search": run_search,
        "latency": run_latency,
        "export": run_export,
        "compare-planner": run_compare_planner,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
