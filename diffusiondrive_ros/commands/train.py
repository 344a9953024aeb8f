"""``diffusiondrive train --config tiny --data DIR --out RUN_DIR``: train (one process, or under torchrun)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny", help="model config name or YAML (ignored with --resume)")
    parser.add_argument("--data", required=True, nargs="+",
                        help="dataset folder(s) written by `diffusiondrive data generate|dagger`, trained on together")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, logs, curves")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16, help="per process (global = this x world size)")
    parser.add_argument("--lr", type=float, default=6e-4, help="AdamW peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up, then cosine to 1e-6")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: no clipping)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--cache-shards", type=int, default=None,
                        help="decoded shards kept in memory per process (default: all; set it for big datasets)")
    parser.add_argument("--anchors", help="anchors .npy (default: DATA/anchors.npy of a single --data, else k-means of "
                                          "the train splits)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="fine-tune: start a new run from this checkpoint's weights, config and anchors (a fresh "
                             "optimizer and schedule; --config and --anchors do not apply unless --retarget)")
    parser.add_argument("--retarget", action="store_true",
                        help="with --init-from: build --config with new anchors (--anchors or k-means of the data) "
                             "and start from the checkpoint's weights (same layer shapes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="scene-level validation split")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps (resumable; schedule unchanged)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: the local rank's GPU)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA, bf16 on CPU)")
    parser.add_argument("--no-diversity", action="store_true", help="skip the mode-diversity metric in validation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..train.trainer import TrainOptions, train

    opts = TrainOptions(
        data=tuple(args.data), out=args.out, config=args.config, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, grad_clip=args.grad_clip,
        workers=args.workers, cache_shards=args.cache_shards, anchors=args.anchors, resume=args.resume,
        init_from=args.init_from, retarget=args.retarget, seed=args.seed,
        val_fraction=args.val_fraction, max_steps=args.max_steps, device=args.device, amp=args.amp,
        diversity=not args.no_diversity, progress=not args.no_progress,
    )
    result = train(opts)
    if not result.is_main:
        return 0
    if result.history:
        last = result.history[-1]
        print(f"{result.run_dir}: {result.epochs_done} epochs, {result.steps_done} steps, "
              f"{result.samples_per_s:.1f} samples/s; last epoch: "
              + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("epoch", "step")))
    else:
        print(f"{result.run_dir}: stopped at step {result.steps_done} (resume with --resume)")
    return 0
