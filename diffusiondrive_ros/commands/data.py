"""``diffusiondrive data generate ...``: training data from the simulator."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data import generate

    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="expert samples from the simulator -> a sharded dataset")
    generate.add_arguments(gen)


def run(args: argparse.Namespace) -> int:
    from ..data import generate

    if args.data_command == "generate":
        return generate.run(args)
    raise ValueError(f"unknown data action {args.data_command!r}")
