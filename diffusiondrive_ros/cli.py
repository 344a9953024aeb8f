"""``diffusiondrive``: the project's command line. Each sub-command lives in ``diffusiondrive_ros.commands.<name>``.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their command runs, so ``diffusiondrive info`` does not pay for the simulator or ROS.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help). The help is repeated here so that `--help` imports nothing heavy.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the main job: the shipped planner drives benchmark scenes in closed loop, PDM-scored"),
    "info": ("info", "parameters and FLOPs per part of a model config"),
    "plan": ("plan", "plan one frame of generated sensor data and print the trajectory and its latency"),
    "export": ("export", "export the whole planner to one ONNX graph (checked against PyTorch)"),
    "import-upstream": ("import_upstream", "convert an upstream NAVSIM DiffusionDrive checkpoint to ours"),
    "data": ("data", "training data: `data generate` expert samples from the simulator, `data check` statistics"),
    "eval": ("eval", "closed-loop PDM evaluation of the planner beside the IDM expert and constant velocity"),
    "scenes": ("scenes", "record a frozen closed-loop scene set: benchmark-style scenes or the generalization suite"),
    "compare": ("compare", "paired per-scene comparison of two evaluations (bootstrap interval on the difference)"),
    "score": ("score", "PDM-score a file of planned trajectories against scene files (or --dump-scenes)"),
    "bag": ("bag", "rosbag2 MCAP bags: synth sensor bags, replay them into the node (recording outputs), record"),
    "anchors": ("anchors", "k-means trajectory anchors from a dataset or .npy (with a BEV plot)"),
    "train": ("train", "train DiffusionDrive: AdamW + warm-up/cosine, checkpoints/resume, validation, torchrun DDP"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusiondrive",
        description="DiffusionDrive planner: model, export, simulation, training and evaluation tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        # add_help=False: "-h" after the command reaches the full parser that knows its arguments.
        cmd = sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Parse the command name first, then let its module add its own arguments.
    known, _ = parser.parse_known_args(argv)
    module = importlib.import_module(f"diffusiondrive_ros.commands.{known._module}")
    name = known.command
    full = argparse.ArgumentParser(prog=f"diffusiondrive {name}", description=COMMANDS[name][1])
    module.add_arguments(full)
    full.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = full.parse_args(_without_command(argv, name))
    logging.basicConfig(
        level=logging.DEBUG if (args.verbose or known.verbose) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return int(module.run(args) or 0)


def _without_command(argv: list[str], name: str) -> list[str]:
    """argv with the (first) sub-command name removed, keeping global flags such as -v."""
    out, removed = [], False
    for a in argv:
        if not removed and a == name:
            removed = True
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(main())
