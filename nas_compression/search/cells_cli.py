"""``nas-compress search dso|egs|eat``: run one part-2 search, deploy its result, write the results folder.

DSO-NAS and EGS join a ``torchrun`` process group when launched under it (gloo on CPU, NCCL on GPU); only rank 0
writes files. Results: ``arch.json`` (the derived cell network), ``history.json``, ``model.onnx`` (INT8 Q/DQ) with
``deploy.json``, and ``genome.json`` (the nearest stage genome for the planner's deploy path; see docs/nas.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..evaluate.classify import ClassifyBudget, load_dataset
from ..supernet.deploy import deploy_network
from ..supernet.distributed import init_from_env, shutdown
from ..supernet.genome_map import nearest_genome
from .tasks import ClassifyTask, classify_template


def run_cell_search(args: argparse.Namespace) -> int:
    import sys

    if args.task == "planner":
        print(
            f"error: `search {args.method}` runs on --task mnist|digits; on the planner it runs inside "
            "`nas-compress compare --task planner --methods ...` (see docs/nas.md)",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.method == "eat":
        return _run_eat(args, out)
    ctx = init_from_env()
    data = load_dataset(args.task)
    if args.method == "dso":
        from .dso import DSOConfig, run_dso

        cfg = DSOConfig(
            channels=args.channels,
            pretrain_epochs=args.search_epochs / 3,
            search_epochs=2 * args.search_epochs / 3,
            retrain_epochs=args.retrain_epochs,
            gamma=args.gamma,
            budget=args.dso_budget,
            train_subset=args.train_subset,
            seed=args.seed,
        )
        res = run_dso(data, cfg, ctx)
    else:
        from .egs import EGSConfig, run_egs

        cfg = EGSConfig(
            channels=args.channels,
            m=args.m,
            search_epochs=args.search_epochs,
            retrain_epochs=args.retrain_epochs,
            train_subset=args.train_subset,
            seed=args.seed,
        )
        res = run_egs(data, cfg, ctx)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        res.arch.save(out / "arch.json")
        nearest_genome(res.arch, classify_template(args.task)).save(out / "genome.json")
        report = deploy_network(res.model, data, out / "model.onnx")
        summary = {
            "config": asdict(cfg),
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
    shutdown(ctx)
    return 0


def _run_eat(args: argparse.Namespace, out: Path) -> int:
    from ..evaluate.evaluator import make_evaluator
    from .compare import small_proxy
    from .eat import EATConfig, run_eat

    budget = ClassifyBudget(epochs=args.epochs, qat_epochs=args.qat_epochs, train_subset=args.train_subset)
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
    res = run_eat(
        small_proxy(args.task, budget),
        ClassifyTask(args.task, budget),
        cfg,
        out,
        evaluator,
        scratch_budget=args.scratch_budget,
    )
    print(f"basic architecture {res.basic.hash} -> best on {args.task} {res.best.hash}; results in {out}")
    if res.cost:
        print(json.dumps(res.cost, indent=2))
    return 0
