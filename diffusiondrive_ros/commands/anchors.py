"""``diffusiondrive anchors --data DIR|FILE.npy --k 20 --out anchors.npy [--plot anchors.png]``: k-means anchors."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder (its training split) or an .npy of (N, 8, 2|3)")
    parser.add_argument("--k", type=int, default=20, help="number of anchors (the model's trajectory_head.num_anchors)")
    parser.add_argument("--out", required=True, help="output .npy, (k, 8, 2) float32")
    parser.add_argument("--plot", help="also write a BEV plot of the anchors over the trajectories (.png)")
    parser.add_argument("--seed", type=int, default=0, help="k-means++ seed")
    parser.add_argument("--restarts", type=int, default=8, help="k-means restarts; the lowest inertia wins")
    parser.add_argument("--split", choices=("train", "val", "all"), default="train", help="dataset split to cluster")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="the dataset split's validation fraction")


def run(args: argparse.Namespace) -> int:
    from ..train.anchors import cluster_anchors, load_trajectories, plot_anchors, save_anchors

    trajectories = load_trajectories(args.data, args.split, args.val_fraction)
    anchors, sizes = cluster_anchors(trajectories, args.k, seed=args.seed, restarts=args.restarts)
    save_anchors(anchors, args.out)
    print(f"wrote {args.out}: {args.k} anchors from {len(trajectories)} trajectories")
    print("cluster sizes (anchor: samples, final x, y [m]):")
    for i, (a, n) in enumerate(zip(anchors, sizes)):
        print(f"  {i:2d}: {int(n):6d}  ({a[-1, 0]:6.1f}, {a[-1, 1]:6.1f})")
    if args.plot:
        print(f"wrote {plot_anchors(anchors, trajectories, args.plot, seed=args.seed)}")
    return 0
