"""Multi-objective bookkeeping: the JASQ scalar objective, non-dominated sorting, crowding, plots and tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# (metric, +1 maximise / -1 minimise)
OBJECTIVES = (("accuracy", 1), ("size_bytes", -1), ("latency_ms", -1))


def jasq_objective(accuracy: float, size_bytes: float, target_bytes: float, w: float = -0.07) -> float:
    """The paper's MnasNet-style ACC * (SIZE / T)^w (w < 0 rewards smaller models), optimised as is."""
    if target_bytes <= 0 or size_bytes <= 0:
        raise ValueError("size and target size must be positive")
    return float(accuracy * (size_bytes / target_bytes) ** w)


def _costs(records: list[dict]) -> np.ndarray:
    """Objectives as costs to minimise, shape (n, k)."""
    return np.array([[-sign * r["metrics"][m] for m, sign in OBJECTIVES] for r in records], dtype=float)


def nondominated_ranks(records: list[dict]) -> np.ndarray:
    """Pareto rank per record (0 = the front), by repeated peeling of the non-dominated set."""
    c = _costs(records)
    n = len(c)
    ranks = np.full(n, -1)
    remaining = np.arange(n)
    rank = 0
    while remaining.size:
        sub = c[remaining]
        dominated = np.array(
            [np.any(np.all(sub <= sub[i], axis=1) & np.any(sub < sub[i], axis=1)) for i in range(len(sub))]
        )
        ranks[remaining[~dominated]] = rank
        remaining = remaining[dominated]
        rank += 1
    return ranks


def crowding_distances(records: list[dict], ranks: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within each rank (boundary points: infinity)."""
    c = _costs(records)
    dist = np.zeros(len(c))
    for r in np.unique(ranks):
        idx = np.where(ranks == r)[0]
        if len(idx) <= 2:
            dist[idx] = np.inf
            continue
        for k in range(c.shape[1]):
            order = idx[np.argsort(c[idx, k])]
            span = c[order[-1], k] - c[order[0], k]
            dist[order[0]] = dist[order[-1]] = np.inf
            if span > 0:
                dist[order[1:-1]] += (c[order[2:], k] - c[order[:-2], k]) / span
    return dist


def nsga2_order(records: list[dict]) -> list[int]:
    """Indices best-first: lower rank, then larger crowding distance, then insertion order."""
    ranks = nondominated_ranks(records)
    crowd = crowding_distances(records, ranks)
    return sorted(range(len(records)), key=lambda i: (ranks[i], -crowd[i], i))


def pareto_front(records: list[dict]) -> list[dict]:
    if not records:
        return []
    ranks = nondominated_ranks(records)
    front = [r for r, k in zip(records, ranks) if k == 0]
    return sorted(front, key=lambda r: r["metrics"]["size_bytes"])


def front_table(front: list[dict], extra: tuple[str, ...] = ()) -> str:
    """Markdown table of the front; ``extra`` names further metrics to show (e.g. the planner's errors)."""
    header = ["genome", "accuracy", *extra, "size (bytes)", "latency (ms)", "objective"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in front:
        m = r["metrics"]
        cells = [r["hash"], f"{m['accuracy']:.4f}", *(f"{m[k]:.4f}" for k in extra)]
        cells += [str(m["size_bytes"]), f"{m['latency_ms']:.3f}", f"{r['objective']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_front(
    records: list[dict],
    path: str | Path,
    title: str = "JASQ search",
    quality_label: str = "validation accuracy (quantized)",
) -> Path:
    """Accuracy vs deployed size (colour: latency) for every candidate, the Pareto front highlighted."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    size = np.array([r["metrics"]["size_bytes"] for r in records]) / 1024
    acc = np.array([r["metrics"]["accuracy"] for r in records])
    lat = np.array([r["metrics"]["latency_ms"] for r in records])
    sc = ax.scatter(size, acc, c=lat, cmap="viridis", s=22, alpha=0.8, label="evaluated candidates")
    fig.colorbar(sc, ax=ax, label="latency (ms, ONNX Runtime CPU)")
    front = pareto_front(records)
    if front:
        ax.plot(
            [r["metrics"]["size_bytes"] / 1024 for r in front],
            [r["metrics"]["accuracy"] for r in front],
            "o",
            mfc="none",
            mec="crimson",
            ms=10,
            mew=1.5,
            label="Pareto front (acc, size, latency)",
        )
    best = max(records, key=lambda r: r["objective"])
    ax.plot(
        best["metrics"]["size_bytes"] / 1024,
        best["metrics"]["accuracy"],
        "*",
        color="orange",
        ms=16,
        mec="k",
        label="best ACC·(SIZE/T)^w",
    )
    if size.max() > 10 * size.min():  # a log axis shows no tick inside less than a decade
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("deployed weight size (KiB, log)")
    else:
        ax.set_xlabel("deployed weight size (KiB)")
    return save_figure(fig, ax, path, quality_label, title)


def save_figure(fig, ax, path: str | Path, ylabel: str, title: str) -> Path:  # noqa: ANN001 - matplotlib figure, axes
    """Label, grid, legend and save a scatter plot, then close its figure."""
    import matplotlib.pyplot as plt

    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
