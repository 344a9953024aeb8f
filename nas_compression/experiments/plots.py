"""One figure for the NAS comparisons: each method's accuracy against one cost per panel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CostPanel:
    """One panel: its x label, every method's cost (None: the method has none, not drawn) and the x scale."""

    label: str
    costs: Sequence[float | None]
    log_scale: bool = False


def plot_methods(methods: Sequence[str], quality: Sequence[float], panels: Sequence[CostPanel], *, ylabel: str,
                 title: str, path: Path, highlight: str | None = None) -> None:
    """Scatter ``quality`` (y) against each panel's costs, one colour per method across the panels; ``highlight``
    (a reference method) is drawn as a large star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for method, y, x in zip(methods, quality, panel.costs):
            if x is None:
                continue
            star = method == highlight
            ax.scatter(x, y, s=160 if star else 60, marker="*" if star else "o", color=colors[method])
            ax.annotate(method, (x, y), textcoords="offset points", xytext=(5, 5))
        if panel.log_scale:  # sizes and latencies span orders of magnitude
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(panel.label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
