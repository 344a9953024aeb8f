"""``diffusiondrive export --config tiny --checkpoint X --out Y.onnx``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny", help="model config (when no --checkpoint: random weights)")
    parser.add_argument("--checkpoint", help="our .safetensors checkpoint")
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument(
        "--opset", type=int, default=18, help="ONNX opset (18; TensorRT GridSample is safe at 17-18, and Mish needs 18)"
    )
    parser.add_argument("--aux", action="store_true", help="also export the agent and BEV-semantic heads")
    parser.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis (batch 1 stays the fast path)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs ONNX Runtime vs PyTorch difference")
    parser.add_argument("--seed", type=int, default=0, help="weight seed when no checkpoint is given")


def run(args: argparse.Namespace) -> int:
    from ..model import build_model, load_config
    from ..model.checkpoint import load_checkpoint
    from ..runtime.export import export_onnx

    if args.checkpoint:
        model, cfg = load_checkpoint(args.checkpoint)
    else:
        cfg = load_config(args.config)
        model = build_model(cfg, seed=args.seed)
    report = export_onnx(
        model,
        cfg,
        args.out,
        opset=args.opset,
        aux=args.aux,
        dynamic_batch=args.dynamic_batch,
        parity_tolerance=args.tolerance,
    )
    print(f"wrote {report.path} ({report.size_bytes / 1e6:.1f} MB, opset {report.opset})")
    print("parity vs PyTorch (max abs diff): " + ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_diff.items()))
    return 0
