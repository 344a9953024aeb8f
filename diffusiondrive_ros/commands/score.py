"""``diffusiondrive score``: PDM-score a file of planned trajectories against scene files, or dump those scenes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", required=True,
                        help="folder of scene .npz files; with --dump-scenes: 'benchmark' or a ScenarioNet folder")
    parser.add_argument("--plans", help=".npz with scene_ids (N,) and trajectories (N, 8, 3) ego-frame plans")
    parser.add_argument("--out", help="write per-scene results and the means to this JSON file")
    parser.add_argument("--allow-missing", action="store_true", help="score only the scenes that have a plan")
    parser.add_argument("--dump-scenes", metavar="DIR",
                        help="instead of scoring: drive --scenes with the IDM expert and save every planning step's "
                             "scoring scene (and the expert's plans as expert_plans.npz) into DIR")
    parser.add_argument("--max-scenes", type=int, help="with --dump-scenes: only the first N scenes")
    parser.add_argument("--duration", type=float, help="with --dump-scenes: seconds per scene")
    parser.add_argument("--config", default="tiny", help="with --dump-scenes: model config (camera rig only)")
    parser.add_argument("--max-rows", type=int, default=30, help="scene rows to print")


def run(args: argparse.Namespace) -> int:
    if args.dump_scenes:
        from ..evaluation.offline_scoring import EXPERT_PLANS_FILE, dump_scenes
        from ..evaluation.scene_sets import resolve_scenes
        from ..model.config import load_config

        scenes = resolve_scenes(args.scenes)[: args.max_scenes] if args.max_scenes else resolve_scenes(args.scenes)
        written = dump_scenes(scenes, args.dump_scenes, config=load_config(args.config), duration_s=args.duration)
        print(f"wrote {len(written)} scene files and {EXPERT_PLANS_FILE} to {args.dump_scenes}")
        return 0
    if not args.plans:
        raise SystemExit("--plans is required (or --dump-scenes DIR)")
    from ..evaluation.offline_scoring import score_plan_file
    from ..pdm.score import format_pdm_table

    table = score_plan_file(args.scenes, args.plans, allow_missing=args.allow_missing)
    print(format_pdm_table(table, max_rows=args.max_rows))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"means": table.means, "scenes": table.rows()}, indent=1))
        print(f"results: {out}")
    return 0
