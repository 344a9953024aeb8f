"""Planner search report: every candidate against the hand-made reference backbones seeded into the search.

The question a planner search answers is "is there a backbone faster than the hand-made one at no worse validation
error?". ``reference.md`` answers it per reference (the base config's encoders at INT8 and at FP16) and
``latency_error.png`` shows measured latency against the validation L2 for every candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..space.genome import PRECISION_NAMES, Genome
from ..strategies.pareto import save_figure

REFERENCE_FILE = "reference.md"
PLOT_FILE = "latency_error.png"


def beats(candidate: dict, reference: dict) -> bool:
    """Strictly lower measured latency at no worse quality (the search's quality, 1 / (1 + error))."""
    c, r = candidate["metrics"], reference["metrics"]
    return c["latency_ms"] < r["latency_ms"] and c["accuracy"] >= r["accuracy"]


def latency_error_front(records: list[dict]) -> list[dict]:
    """Non-dominated candidates in (latency, quality) alone, fastest first."""
    out = []
    for r in sorted(records, key=lambda r: (r["metrics"]["latency_ms"], -r["metrics"]["accuracy"])):
        if not out or r["metrics"]["accuracy"] > out[-1]["metrics"]["accuracy"]:
            out.append(r)
    return out


def _row(r: dict, label: str) -> str:
    m = r["metrics"]
    return (
        f"| {label} | {r['hash']} | {m['ade_4s']:.3f} | {m['min_ade']:.3f} | {m['mode_accuracy']:.3f} | "
        f"{m['latency_ms']:.2f} | {m['size_bytes'] / 1e6:.2f} | {m['params'] / 1e6:.2f} |"
    )


HEADER = (
    "| | genome | L2 ade_4s (m) | minADE (m) | mode acc | latency (ms) | deployed MB | params (M) |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def reference_report(records: list[dict], seeds: Sequence[Genome]) -> str:
    """Markdown: per reference, the candidates that beat it (fastest first) or a plain 'none'."""
    by_hash = {r["hash"]: r for r in records}
    lines = ["# Planner search against the hand-made backbone", ""]
    lines += [
        "Quantized validation metrics after the same proxy training budget; latency of the whole Q/DQ planner in",
        "ONNX Runtime CPU (1 thread, median), timed when each candidate finished (so under whatever load the",
        "machine had then). Children inherit their parent's weights (JASQ), so their errors come from more",
        "effective training than a reference's: retrain a winner from scratch at the same budget and re-time it",
        "beside the reference before claiming it is faster at no worse error.",
        "",
    ]
    for i, seed in enumerate(seeds):
        ref = by_hash.get(seed.hash)
        if ref is None:
            continue
        winners = sorted((r for r in records if beats(r, ref)), key=lambda r: r["metrics"]["latency_ms"])
        lines += [f"## Reference {i + 1}: `{seed.hash}`", "", HEADER, _row(ref, "reference")]
        lines += [_row(r, "faster, no worse") for r in winners]
        if winners:
            best = winners[0]["metrics"]
            lines += [
                "",
                f"{len(winners)} candidate(s) beat it; the fastest runs in {best['latency_ms']:.2f} ms vs "
                f"{ref['metrics']['latency_ms']:.2f} ms "
                f"({100 * (1 - best['latency_ms'] / ref['metrics']['latency_ms']):.0f} % less) at L2 "
                f"{best['ade_4s']:.3f} m vs {ref['metrics']['ade_4s']:.3f} m.",
            ]
        else:
            lines += ["", "No candidate is both faster and no worse."]
        lines.append("")
    lines += ["## Latency / error front", "", HEADER]
    lines += [_row(r, "front") for r in latency_error_front(records)]
    return "\n".join(lines) + "\n"


def plot_latency_error(records: list[dict], seeds: Sequence[Genome], path: str | Path) -> Path:
    """Measured latency (x) vs validation L2 (y) of every candidate; references as stars, the front circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lat = np.array([r["metrics"]["latency_ms"] for r in records])
    err = np.array([r["metrics"]["ade_4s"] for r in records])
    size = np.array([r["metrics"]["size_bytes"] for r in records]) / 1e6
    sc = ax.scatter(lat, err, c=size, cmap="viridis", s=26, alpha=0.85, label="candidates")
    fig.colorbar(sc, ax=ax, label="deployed weights (MB)")
    front = latency_error_front(records)
    ax.plot(
        [r["metrics"]["latency_ms"] for r in front],
        [r["metrics"]["ade_4s"] for r in front],
        "o-",
        mfc="none",
        mec="crimson",
        color="crimson",
        alpha=0.7,
        ms=10,
        label="latency/quality front",
    )
    by_hash = {r["hash"]: r for r in records}
    for seed, marker in zip(seeds, ("*", "P", "X", "D")):
        ref = by_hash.get(seed.hash)
        if ref is not None:
            m = ref["metrics"]
            bits = PRECISION_NAMES.get(seed.image.stem_bits, f"{seed.image.stem_bits}-bit")
            ax.plot(m["latency_ms"], m["ade_4s"], marker, color="orange", mec="k", ms=15, label=f"hand-made ({bits})")
    ax.set_xlabel("measured latency (ms, whole Q/DQ planner, ONNX Runtime CPU, 1 thread)")
    return save_figure(fig, ax, path, "validation L2 ade_4s (m, quantized)", f"Planner JASQ: {len(records)} candidates")


def write_planner_report(records: list[dict], seeds: Sequence[Genome], out_dir: str | Path) -> str:
    """Write reference.md and latency_error.png into the results directory; returns the markdown."""
    out = Path(out_dir)
    text = reference_report(records, seeds)
    (out / REFERENCE_FILE).write_text(text)
    if records:
        plot_latency_error(records, seeds, out / PLOT_FILE)
    return text
