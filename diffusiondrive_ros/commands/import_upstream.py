"""``diffusiondrive import-upstream CKPT --out model.safetensors``: load an upstream NAVSIM checkpoint strictly."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="upstream Lightning checkpoint (.ckpt) of hustvl/DiffusionDrive")
    parser.add_argument("--config", default="navsim", help="our config matching the upstream layout")
    parser.add_argument("--out", required=True, help="output checkpoint in our format (.safetensors)")


def run(args: argparse.Namespace) -> int:
    from ..model import load_config
    from ..model.checkpoint import save_checkpoint
    from ..model.upstream import import_upstream

    model = import_upstream(args.checkpoint, load_config(args.config))
    save_checkpoint(model, args.out, extra={"imported_from": str(args.checkpoint)})
    print(f"imported {sum(1 for _ in model.state_dict())} tensors into {args.out}")
    return 0
