"""Paired comparison of two evaluations on the same scenes: per-scene differences and a bootstrap interval.

Two planners driven on the same frozen scenes give paired per-scene scores; the mean of the per-scene differences
with a 95 % bootstrap interval (resampling scenes) says whether one is better beyond the scene-to-scene spread.
Several runs with other planner seeds can be pooled (each (scene, seed) pair is one paired observation, resampled by
scene so that the interval does not pretend the seeds are independent scenes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOOTSTRAP_SAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """``b - a`` of a per-scene metric: its mean, a 95 % bootstrap interval, and how many scenes back it."""

    metric: str
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    scenes: int
    runs: int
    b_better: int  # scenes (averaged over runs) where b scored higher than a
    a_better: int

    @property
    def verdict(self) -> str:
        """Which side is higher, only when the interval excludes zero (higher is better for scores, worse for
        collision and off-road columns)."""
        if self.ci_low > 0:
            return "b higher"
        if self.ci_high < 0:
            return "a higher"
        return "no difference shown"


def scene_scores(results: dict, planner: str, metric: str = "pdms") -> dict[str, float]:
    """scene id -> the planner's per-scene ``metric`` (a sub-score or a closed-loop column) from a results.json."""
    if planner not in results["scenes"]:
        raise KeyError(f"planner {planner!r} not in these results; planners: {sorted(results['scenes'])}")
    out = {}
    for scene in results["scenes"][planner]:
        if scene.get("error") is None and scene.get("means"):
            out[scene["scene_id"]] = float(scene["means"][metric])
    return out


def paired_difference(a: Sequence[dict[str, float]], b: Sequence[dict[str, float]], metric: str = "pdms",
                      seed: int = 0) -> PairedDifference:
    """Mean over scenes of b - a, with a scene-resampling bootstrap interval; ``a`` and ``b`` are lists of runs
    (scene -> score), paired run by run (same planner seed), over the scenes every run has."""
    if not a or len(a) != len(b):
        raise ValueError(f"need the same number (>= 1) of runs on both sides, got {len(a)} and {len(b)}")
    scenes = sorted(set.intersection(*(set(r) for r in (*a, *b))))
    if not scenes:
        raise ValueError("the runs share no scene")
    score_a = np.array([[run[s] for s in scenes] for run in a]).mean(axis=0)  # per scene, mean over runs
    score_b = np.array([[run[s] for s in scenes] for run in b]).mean(axis=0)
    diff = score_b - score_a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(scenes), (BOOTSTRAP_SAMPLES, len(scenes)))
    boot = diff[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return PairedDifference(metric, float(score_a.mean()), float(score_b.mean()), float(diff.mean()), float(low),
                            float(high), len(scenes), len(a), int((diff > 1e-9).sum()), int((diff < -1e-9).sum()))


def load_results(path: str | os.PathLike) -> dict:
    path = Path(path)
    return json.loads((path / "results.json" if path.is_dir() else path).read_text())


def format_difference(d: PairedDifference, name_a: str, name_b: str) -> str:
    return (f"{d.metric}: {name_a} {d.mean_a:.3f} vs {name_b} {d.mean_b:.3f}; {name_b} - {name_a} = {d.mean_diff:+.3f} "
            f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}] (95 % bootstrap over {d.scenes} scenes, {d.runs} run(s) each); "
            f"{name_b} higher on {d.b_better}, lower on {d.a_better}: "
            + d.verdict.replace("b higher", f"{name_b} higher").replace("a higher", f"{name_a} higher"))
