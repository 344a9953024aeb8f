"""``diffusiondrive eval``: closed-loop PDM evaluation of the planner beside the IDM expert and constant velocity."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..contract import check_scored_duration
from .model_args import add_model_arguments, resolve_model
from .sampling_args import add_sampling_arguments


def scored_duration(text: str) -> float:
    """Seconds per scene (argparse type): at least the PDM horizon, or no plan of the drive could be scored."""
    try:
        return check_scored_duration(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", default="benchmark",
                        help="'benchmark' (8 frozen scenes), 'generalization' (the frozen suite: a table per family) "
                             "or a ScenarioNet folder")
    add_model_arguments(parser)
    parser.add_argument("--baselines", default="expert,cv",
                        help="comma-separated reference planners (expert, cv); '' for none")
    parser.add_argument("--no-planner", action="store_true", help="evaluate only the baselines")
    parser.add_argument("--out", default="eval_out", help="folder for results.json and plots/")
    parser.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    parser.add_argument("--duration", type=scored_duration, help="seconds per scene (default: the whole scene)")
    parser.add_argument("--reactive", action="store_true", help="IDM-reactive traffic instead of the logged one")
    parser.add_argument("--no-plots", action="store_true", help="skip the BEV plots")
    parser.add_argument("--camera-width", type=int,
                        help="rendered camera width (default: the config's source width; 960 renders 4x faster "
                             "for the NAVSIM crops)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planner's diffusion noise (and weights)")
    parser.add_argument("--blank", nargs="+", choices=("camera", "lidar"), default=[],
                        help="input ablation: blank these sensors of the learned planner (black cameras, no LiDAR "
                             "points)")
    add_sampling_arguments(parser, "the model's")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import RecordingPlanner, baseline_planners, run_evaluation
    from ..evaluation.plots import scene_plotter
    from ..evaluation.results import format_table
    from ..evaluation.scene_sets import resolve_scenes

    scenes = resolve_scenes(args.scenes)
    if args.max_scenes is not None:
        if args.max_scenes < 1:
            raise SystemExit("--max-scenes must be >= 1")
        scenes = scenes[: args.max_scenes]
    planners = {}
    planner = None
    # Baselines alone need a config only (the camera rig): resolve as torch so that no model file is required.
    model = resolve_model(args.model, "torch" if args.no_planner and args.model is None else args.backend, args.config)
    config = model.config.with_sampling(args.noise_scale, args.smoothing)
    if not args.no_planner:
        from ..runtime.backends import make_planner

        # The resolved file, not a model directory: make_planner would take the directory's config back and drop
        # the --smoothing / --noise-scale overrides already applied to ``config``.
        planner = make_planner(config, args.backend, model.path, seed=args.seed)
        name = f"diffusiondrive-{args.backend}" + "".join(f"-no-{b}" for b in args.blank)
        planners[name] = RecordingPlanner(planner, blank=args.blank)
    names = [n.strip() for n in args.baselines.split(",") if n.strip()]
    planners.update(baseline_planners(names))
    if not planners:
        raise SystemExit("nothing to evaluate: give --baselines or drop --no-planner")
    try:
        report = run_evaluation(scenes, planners, config=config, duration_s=args.duration,
                                reactive_traffic=args.reactive, out_dir=args.out, camera_width=args.camera_width,
                                on_scene=None if args.no_plots else scene_plotter(args.out))
    finally:
        if planner is not None:
            planner.close()
    print(format_table(report))
    out = Path(args.out)
    print(f"results: {out / 'results.json'}" + ("" if args.no_plots else f"; plots: {out / 'plots'}/"))
    return 0 if all(r.error is None for rs in report.results.values() for r in rs) else 1
