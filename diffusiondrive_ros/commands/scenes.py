"""``diffusiondrive scenes record|suite``: record a frozen scene set (ScenarioNet): benchmark-style procedural
scenes, or the generalization suite's families."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.recording import DEFAULT_BLOCKS, DEFAULT_NUM_SCENES, DEFAULT_SCENE_S, DEFAULT_WARMUP_S, SUITE_PER_FAMILY

    sub = parser.add_subparsers(dest="scenes_command", metavar="ACTION", required=True)
    record = sub.add_parser("record", help="record benchmark-style scenes (IDM traffic and IDM ego, warm-up cropped)")
    record.add_argument("--out", required=True, help="output folder (e.g. models/benchmark)")
    record.add_argument("--n", type=int, default=DEFAULT_NUM_SCENES, help="number of scenes")
    record.add_argument("--duration", type=float, default=DEFAULT_SCENE_S, help="scene length after the warm-up [s]")
    record.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, help="cropped warm-up at the start [s]")
    record.add_argument("--offset", type=int, default=0, help="first benchmark seed offset")
    record.add_argument("--blocks", default=str(DEFAULT_BLOCKS), help="map block count or block string")
    record.add_argument("--overwrite", action="store_true", help="replace scenes already in --out")
    suite = sub.add_parser("suite", help="record the generalization suite: scenes of every family of sim/scenes.py "
                                         "SUITE_FAMILIES (models/generalization)")
    suite.add_argument("--out", required=True, help="output folder (e.g. models/generalization)")
    suite.add_argument("--per-family", type=int, default=SUITE_PER_FAMILY, help="scenes per family")
    suite.add_argument("--duration", type=float, default=DEFAULT_SCENE_S, help="scene length after the warm-up [s]")
    suite.add_argument("--overwrite", action="store_true", help="replace scenes already in --out")


def run(args: argparse.Namespace) -> int:
    from ..sim.recording import export_benchmark, export_suite

    if args.scenes_command == "suite":
        names = export_suite(args.out, args.per_family, duration_s=args.duration, overwrite=args.overwrite)
    else:
        blocks: str | int = int(args.blocks) if args.blocks.isdigit() else args.blocks
        names = export_benchmark(args.out, args.n, duration_s=args.duration, warmup_s=args.warmup,
                                 first_offset=args.offset, blocks=blocks, overwrite=args.overwrite)
    size_mb = sum((Path(args.out) / name).stat().st_size for name in names) / 1e6
    print(f"wrote {len(names)} scenes to {args.out} ({size_mb:.1f} MB)")
    return 0
