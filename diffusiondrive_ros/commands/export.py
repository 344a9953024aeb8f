"""``diffusiondrive export --out Y.onnx | --model-dir DIR [--model X] [--precision int8 --calibration DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .model_args import resolve_model
from .sampling_args import add_sampling_arguments

SYNTHETIC = "synthetic"  # --calibration: synthetic frames instead of a dataset folder


def calibration_feeds(cfg, source: str, num_samples: int, seed: int = 0) -> list[dict]:  # noqa: ANN001 - ModelConfig
    """int8 calibration feeds: ``source`` "synthetic" (frames run through the real preprocessing) or evenly spaced
    samples of a ``data generate`` dataset folder (already preprocessed); start noise per sample from ``seed``."""
    import numpy as np

    from ..runtime.quantize import planner_feeds
    from ..runtime.types import PlannerInputs

    if num_samples < 1:
        raise ValueError(f"need at least one calibration sample, got {num_samples}")
    rng = np.random.default_rng(seed)
    if str(source) == SYNTHETIC:
        from ..data.synthetic import synthetic_frame
        from ..runtime.preprocess import preprocess_frame

        # one generator for frames and noise, drawn in turn (planner_feeds consumes the frames lazily)
        return planner_feeds(cfg, (preprocess_frame(synthetic_frame(cfg, rng, stamp=0.1 * i), cfg)
                                   for i in range(num_samples)), rng)
    if not Path(source).is_dir():
        raise FileNotFoundError(f"calibration source must be {SYNTHETIC!r} or a dataset folder, got {source!r}")
    from ..data.dataset import DrivingDataset

    dataset = DrivingDataset(source, config=cfg)
    if len(dataset) == 0:
        raise ValueError(f"calibration dataset {source} has no samples")
    picked = np.unique(np.linspace(0, len(dataset) - 1, num=min(num_samples, len(dataset))).round().astype(int))
    items = (dataset[int(i)] for i in picked)
    return planner_feeds(cfg, (PlannerInputs(*(it[k].numpy()[None] for k in ("camera", "lidar", "status")))
                               for it in items), rng)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..runtime.quantize import CALIBRATION_METHODS, DEFAULT_SCOPE, QUANT_FORMATS, QUANT_SCOPES

    parser.add_argument("--model", help="the weights to export: our .safetensors checkpoint or a model directory "
                                        "(default: --config with seeded random weights)")
    parser.add_argument("--config", default="tiny", help="model config for random weights (a --model brings its own)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="output .onnx path")
    target.add_argument(
        "--model-dir",
        help="write a model directory instead (planner.onnx + model.safetensors + model.yaml + anchors.npy), "
        "loadable by every backend and by the node through model_path",
    )
    parser.add_argument(
        "--opset", type=int, default=18, help="ONNX opset (18; TensorRT GridSample is safe at 17-18, and Mish needs 18)"
    )
    parser.add_argument("--aux", action="store_true", help="also export the agent and BEV-semantic heads")
    parser.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis (batch 1 stays the fast path)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs ONNX Runtime vs PyTorch difference")
    parser.add_argument("--seed", type=int, default=0, help="weight seed when no --model is given")
    deploy = parser.add_argument_group("deployment settings (with --model-dir: written to model.yaml and the weights)")
    add_sampling_arguments(deploy, "the checkpoint's or config's")
    quant = parser.add_argument_group("int8 (static post-training quantization)")
    quant.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    quant.add_argument(
        "--calibration", default=SYNTHETIC, help=f"a `data generate` dataset folder, or {SYNTHETIC!r} frames"
    )
    quant.add_argument("--calibration-samples", type=int, default=16)
    quant.add_argument(
        "--quant-format",
        choices=QUANT_FORMATS,
        default="qdq",
        help="qdq: symmetric Q/DQ, zero points 0 (TensorRT and ORT); qoperator: QLinear ops, fastest on ORT CPU only",
    )
    quant.add_argument(
        "--quant-scope",
        choices=list(QUANT_SCOPES),
        default=DEFAULT_SCOPE,
        help="what to quantize (features: per-frame feature maps; the diffusion loop stays float)",
    )
    quant.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax")


def run(args: argparse.Namespace) -> int:
    from ..model import build_model, load_config
    from ..model.checkpoint import load_checkpoint
    from ..runtime.export import export_onnx

    if (args.smoothing is not None or args.noise_scale is not None) and not args.model_dir:
        raise SystemExit("--smoothing / --noise-scale are runtime settings of a model directory: use --model-dir "
                         "(an .onnx file alone carries no config)")
    if args.model:
        resolved = resolve_model(args.model, "torch", args.config)  # the torch weights of a checkpoint or directory
        model, cfg = load_checkpoint(resolved.path)
    else:
        cfg = load_config(args.config)
        model = build_model(cfg, seed=args.seed)
    model.config = cfg = cfg.with_sampling(args.noise_scale, args.smoothing)
    if args.model_dir:
        from ..runtime.model_dir import ONNX_NAME, write_model_dir

        cfg = write_model_dir(model, args.model_dir)
        args.out = str(Path(args.model_dir) / ONNX_NAME)
    if args.precision == "int8":
        if args.aux or args.dynamic_batch:
            raise SystemExit("--precision int8 exports the batch-1 planner graph only (no --aux / --dynamic-batch)")
        from ..runtime.quantize import export_int8_onnx

        result = export_int8_onnx(
            model,
            cfg,
            args.out,
            calibration=calibration_feeds(cfg, args.calibration, args.calibration_samples),
            held_out=calibration_feeds(cfg, SYNTHETIC, 3, seed=10_000),  # other frames than any calibration set
            quant_format=args.quant_format,
            scope=args.quant_scope,
            calibration_method=args.calibration_method,
            opset=args.opset,
        )
        q, acc = result.quantize, result.accuracy
        print(
            f"wrote {q.path} ({q.size_bytes / 1e6:.1f} MB, int8 {q.quant_format}, scope {q.scope}: "
            f"{q.quantized_nodes} nodes, {q.calibration_samples} calibration samples)"
        )
        print(
            f"int8 vs fp32 on {acc.samples} held-out inputs: trajectory max {acc.max_trajectory_diff:.3g} m, "
            f"mean {acc.mean_trajectory_diff:.3g} m; modes max {acc.max_modes_diff:.3g} m"
        )
        return 0
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
