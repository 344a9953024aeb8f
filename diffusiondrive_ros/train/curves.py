"""The training-curves figure: train loss and validation metrics per epoch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

CURVE_PANELS = (
    ("loss", ("train_loss",)),
    ("displacement [m]", ("val_ade_4s", "val_fde_4s", "val_min_ade", "val_min_fde")),
    ("fraction", ("val_mode_accuracy", "val_diversity")),
)


def plot_training_curves(history: Sequence[dict[str, float]], path: str | os.PathLike) -> Path:
    """One panel per group of CURVE_PANELS, x = epoch; metrics absent from the history are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(5 * len(CURVE_PANELS), 4))
    epochs = [row["epoch"] for row in history]
    for ax, (ylabel, keys) in zip(axes, CURVE_PANELS):
        for key in keys:
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], "-o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, lw=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle("training curves")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
