"""``diffusiondrive data generate|dagger|check``: training data from the simulator (the expert's drives, or the
planner's own drives labelled by the expert), and a look at what it contains."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add_generate_arguments(sub.add_parser("generate", help="expert samples from the simulator -> a sharded dataset"))
    _add_dagger_arguments(sub.add_parser(
        "dagger", help="on-policy data: the planner of --model drives, the tracked expert labels the states it meets"))
    _add_check_arguments(sub.add_parser("check", help="agents and LiDAR returns in expert samples (+ histograms)"))


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.datagen import DEFAULT_AGENT_KINDS, EXPERT_SOURCES

    _add_common_arguments(parser)
    parser.add_argument("--perturb", action="store_true", help="perturb the ego off the expert path (recovery data)")
    parser.add_argument("--raw", action="store_true", help="also store raw sensors (cameras, LiDAR points)")
    parser.add_argument("--agent-kinds", nargs="+", default=list(DEFAULT_AGENT_KINDS),
                        help="agent kinds that fill the agent head's slots (default: vehicle)")
    parser.add_argument("--expert", choices=sorted(EXPERT_SOURCES), default="tracked",
                        help="tracked: the evaluation's IDM route planner through the LQR tracker (default); "
                             "metadrive: MetaDrive's IDM policy with physics")
    parser.add_argument("--distribution", default=None,
                        help="scene distribution of the tracked expert's scenes (sim/scenes.py): diverse (default: "
                             "every working block type, 1-4 lanes, 6-25 m/s, SUMO networks), legacy (the old 4-block "
                             "3-lane maps at 10 m/s) or a suite-* family")
    parser.add_argument("--source", default=None, help=argparse.SUPPRESS)  # package.module:function, for tests


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", type=int, required=True, help="number of scenes (simulator seeds)")
    parser.add_argument("--seed", type=int, default=None, help="first scene seed (default: start of training range)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="worker processes (0: run in this process)")
    parser.add_argument("--out", required=True, help="dataset folder (created; an existing one is resumed)")
    parser.add_argument("--config", default="tiny", help="model config name or YAML path (default: tiny)")
    parser.add_argument("--samples-per-scene", type=int, default=None,
                        help="stop each scene after K samples (default: until the episode ends)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples of a scene")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_dagger_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common_arguments(parser)
    parser.add_argument("--model", required=True, help="the planner that drives: a model directory")
    parser.add_argument("--backend", default="onnxruntime", help="backend that runs it (default: onnxruntime)")
    parser.add_argument("--distribution", default=None, help="scene distribution (sim/scenes.py; default: diverse)")


def _add_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=10, help="training seeds 0 .. N-1")
    parser.add_argument("--per-seed", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--perturb", action="store_true")
    parser.add_argument("--out", help="PNG of the histograms")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "generate":
        return run_generate(args)
    if args.data_command == "dagger":
        return run_dagger(args)
    if args.data_command == "check":
        return run_check(args)
    raise ValueError(f"unknown data action {args.data_command!r}")


def run_generate(args: argparse.Namespace) -> int:
    from ..model.config import load_config
    from ..sim import datagen
    from ..sim.scenes import DEFAULT_TRAINING_DISTRIBUTION

    config = load_config(args.config)
    distribution = args.distribution
    if args.source is None and args.expert == "tracked":
        distribution = distribution or DEFAULT_TRAINING_DISTRIBUTION
    elif distribution is not None:
        raise SystemExit("--distribution applies to the tracked expert only")
    manifest = datagen.generate(
        args.out, args.scenes, datagen.default_first_seed() if args.seed is None else args.seed, args.workers,
        config, samples_per_scene=args.samples_per_scene, sample_interval_s=args.interval, perturb=args.perturb,
        raw=args.raw, source=args.source or datagen.EXPERT_SOURCES[args.expert], agent_kinds=args.agent_kinds,
        progress=not args.no_progress, distribution=distribution,
    )
    print(f"{args.out}: {manifest['num_scenes']} scenes, {manifest['num_samples']} samples ({config.name})")
    return 0


def run_dagger(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..model.config import load_config
    from ..runtime.model_dir import is_model_dir, model_fingerprint
    from ..sim import datagen
    from ..sim.scenes import DEFAULT_TRAINING_DISTRIBUTION

    if not is_model_dir(args.model):
        raise SystemExit(f"--model {args.model}: not a model directory (diffusiondrive export --model-dir)")
    config = load_config(args.config)
    model = str(Path(args.model).resolve())
    # The model's content hash is part of the generator record: a resumed round must roll out the same planner.
    options = {"model": model, "backend": args.backend, "model_sha256": model_fingerprint(model)}
    manifest = datagen.generate(
        args.out, args.scenes, datagen.default_first_seed() if args.seed is None else args.seed, args.workers,
        config, samples_per_scene=args.samples_per_scene, sample_interval_s=args.interval,
        source=datagen.DAGGER_SOURCE, progress=not args.no_progress,
        distribution=args.distribution or DEFAULT_TRAINING_DISTRIBUTION, source_options=options,
    )
    print(f"{args.out}: {manifest['num_scenes']} scenes, {manifest['num_samples']} on-policy samples of "
          f"{args.model} ({config.name})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    import numpy as np

    from ..model.config import load_config
    from ..sim.data_check import plot_statistics, sample_statistics

    config = load_config(args.config)
    stats = sample_statistics(list(range(args.seeds)), config, args.per_seed, args.interval, args.perturb)
    agents = np.array([s.agents for s in stats])
    pixels = np.array([s.lidar_pixels for s in stats])
    print(f"{len(stats)} samples: agents per sample mean {agents.mean():.1f}, "
          f"with >= 1 agent {np.mean(agents > 0):.0%}; "
          f"LiDAR pixels mean {pixels.mean():.0f}, with > 0 {np.mean(pixels > 0):.0%}")
    print("agents histogram:", dict(zip(*np.unique(agents, return_counts=True))))
    for s in stats:
        print(f"seed {s.seed:3d} t {s.t:5.1f} agents {s.agents:3d} lidar_pixels {s.lidar_pixels:4d} "
              f"points>split {s.points_above_split:5d}")
    if args.out:
        plot_statistics(stats, args.out)
    return 0
