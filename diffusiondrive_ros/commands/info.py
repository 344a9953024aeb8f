"""``diffusiondrive info --config navsim``: parameters and FLOPs per part."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny", help="model config name (tiny, navsim) or YAML path")
    parser.add_argument("--model", help="profile this checkpoint's or model directory's model instead of --config")
    parser.add_argument("--no-aux", action="store_true", help="leave the auxiliary heads out of the FLOP count")


def run(args: argparse.Namespace) -> int:
    from ..model import build_model, load_config
    from ..model.checkpoint import load_checkpoint
    from ..model.profile import format_profile, profile_model

    if args.model:
        from .model_args import resolve_model

        model, cfg = load_checkpoint(resolve_model(args.model, "torch", args.config).path)
    else:
        cfg = load_config(args.config)
        model = build_model(cfg, seed=0)
    c, lid = cfg.camera, cfg.lidar
    print(
        f"config {cfg.name}: camera 3x{c.height}x{c.width},"
        f" LiDAR 1x{lid.size}x{lid.size} ({lid.pixels_per_meter} px/m),"
        f" d_model {cfg.neck.d_model}, {cfg.trajectory_head.num_anchors} anchors,"
        f" {cfg.trajectory_head.denoising_steps} denoising steps, {cfg.trajectory_head.cascade_layers} cascade layers"
    )
    print(format_profile(profile_model(model, with_aux=not args.no_aux), "per part (batch 1, forward):"))
    return 0
