"""``diffusiondrive compare A B``: paired per-scene comparison of two evaluations with a bootstrap interval."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", nargs="+", help="results.json (or eval folders) of side A; several: runs with other seeds")
    parser.add_argument("--b", nargs="+", required=True, help="results.json (or eval folders) of side B, paired with A")
    parser.add_argument("--planner-a", default="diffusiondrive-onnxruntime", help="planner name in A's results")
    parser.add_argument("--planner-b", default=None, help="planner name in B's results (default: --planner-a)")
    parser.add_argument("--metrics", nargs="+", default=["pdms", "nc", "dac", "ep", "at_fault_collision"],
                        help="per-scene metrics to compare (sub-scores or closed-loop columns)")
    parser.add_argument("--name-a", default="A")
    parser.add_argument("--name-b", default="B")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.compare import format_difference, load_results, paired_difference, scene_scores

    planner_b = args.planner_b or args.planner_a
    runs_a = [load_results(p) for p in args.a]
    runs_b = [load_results(p) for p in args.b]
    for metric in args.metrics:
        diff = paired_difference([scene_scores(r, args.planner_a, metric) for r in runs_a],
                                 [scene_scores(r, planner_b, metric) for r in runs_b], metric)
        print(format_difference(diff, args.name_a, args.name_b))
    return 0
