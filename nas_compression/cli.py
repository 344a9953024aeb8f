"""``nas-compress``: run JASQ searches, validate latency tables, and deploy a genome into the planner.

nas-compress search jasq --task mnist --budget 64 --population 16 --out runs/jasq-mnist
nas-compress latency --task mnist --samples 5 --out runs/latency
nas-compress export --genome runs/jasq-planner/best.json --config tiny --out models/nas-tiny
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", choices=["jasq"], help="search method")
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
    p.add_argument("--policy-only", action="store_true", help="fixed architecture (the template); search precisions")
    p.add_argument("--epochs", type=float, default=1.0, help="proxy training epochs per candidate")
    p.add_argument("--qat-epochs", type=float, default=0.0, help="QAT fine-tune epochs after quantization")
    p.add_argument("--train-subset", type=int, default=None, help="train on the first N images only")
    p.add_argument("--evaluator", choices=["process", "serial", "ray"], default="process")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results directory (re-run the same command to resume)")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas-compress", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _search_args(sub.add_parser("search", help="run or resume a search"))
    _latency_args(sub.add_parser("latency", help="build a latency table and validate it on sample genomes"))
    _export_args(sub.add_parser("export", help="deploy a genome into the planner: model dir with Q/DQ ONNX"))
    return parser


def run_search(args: argparse.Namespace) -> int:
    from .evaluate.classify import ClassifyBudget
    from .evaluate.evaluator import make_evaluator
    from .search.jasq import JasqConfig, run_jasq
    from .search.pareto import front_table, pareto_front
    from .search.tasks import ClassifyTask

    if args.task == "planner":
        print(
            "the planner proxy task is not implemented yet (see docs/nas.md); use --task mnist|digits", file=sys.stderr
        )
        return 2
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
    records = run_jasq(task, cfg, args.out, make_evaluator(args.evaluator, args.workers, args.ray_address))
    print(front_table(pareto_front(records)))
    print(f"results: {args.out} (candidates.jsonl, front.png, front.md, best.json)")
    return 0


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return {"search": run_search, "latency": run_latency, "export": run_export}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
