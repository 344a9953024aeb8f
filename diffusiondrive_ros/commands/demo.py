"""``diffusiondrive demo``: the main job — the shipped planner drives a few frozen benchmark scenes in closed loop on
ONNX Runtime CPU, scored with the PDM score beside the IDM expert and a constant-velocity planner."""

from __future__ import annotations

import argparse
import time

from . import eval as eval_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model directory (default: the shipped models/tiny)")
    parser.add_argument("--backend", default="onnxruntime", help="onnxruntime (default), torch or tensorrt")
    parser.add_argument("--max-scenes", type=int, default=3, help="benchmark scenes to drive (default 3 of 8)")
    parser.add_argument("--duration", type=eval_command.scored_duration,
                        help="seconds per scene, at least 4 (default: the whole 20 s scene)")
    parser.add_argument("--out", default="demo_out", help="folder for results.json and the BEV plots")
    parser.add_argument("--camera-width", type=int, default=960, help="rendered camera width (16:9)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the diffusion start noise")


def run(args: argparse.Namespace) -> int:
    from ..runtime.model_dir import shipped_model_dir

    model = args.model or str(shipped_model_dir("tiny"))
    argv = [
        "--scenes",
        "benchmark",
        "--backend",
        args.backend,
        "--model",
        model,
        "--out",
        args.out,
        "--max-scenes",
        str(args.max_scenes),
        "--camera-width",
        str(args.camera_width),
        "--seed",
        str(args.seed),
    ]
    if args.duration is not None:
        argv += ["--duration", str(args.duration)]
    eval_parser = argparse.ArgumentParser(prog="diffusiondrive eval")
    eval_command.add_arguments(eval_parser)
    eval_args = eval_parser.parse_args(argv)  # eval's own defaults for everything else
    print(
        f"demo: {model} on {args.backend}, {args.max_scenes} benchmark scenes, closed loop (replan every 0.5 s, "
        "track at 10 Hz), beside the IDM expert and constant velocity"
    )
    start = time.perf_counter()
    status = eval_command.run(eval_args)
    print(f"demo wall time: {time.perf_counter() - start:.0f} s")
    return status
