"""Bird's-eye plots of a closed-loop evaluation scene: lanes, other agents, each planner's driven path, and the
learned planner's candidate modes at a few planning steps coloured by their scores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..geometry import box_corners, ego_to_world

if TYPE_CHECKING:
    from .results import SceneResult

PLANNER_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive")
MODE_SNAPSHOTS = 4  # planning steps whose candidate modes are drawn
MARGIN_M = 25.0


def _mode_snapshots(result: SceneResult, count: int = MODE_SNAPSHOTS) -> list[tuple[np.ndarray, ...]]:
    """(ego pose, modes (M,8,3) world, scores (M,)) at ``count`` evenly spread planning steps of a learned planner."""
    drive_log = result.drive_log
    if drive_log is None or not result.plan_results:
        return []
    n = min(len(result.plan_results), len(drive_log.plan_times))
    picks = sorted(set(np.linspace(0, n - 1, min(count, n)).round().astype(int).tolist()))
    out = []
    for i in picks:
        step = int(round(drive_log.plan_times[i] / (drive_log.times[1] - drive_log.times[0]))) if len(
            drive_log.times) > 1 else 0
        pose = drive_log.ego_poses[min(step, len(drive_log.ego_poses) - 1)]
        plan = result.plan_results[i]
        modes = np.asarray(plan.modes, dtype=np.float64)
        world = ego_to_world(modes.reshape(-1, 3), pose).reshape(modes.shape)
        out.append((pose, world, np.asarray(plan.mode_scores, dtype=np.float64)))
    return out


def save_scene_plot(path: str | os.PathLike, scene_id: str, results: Mapping[str, SceneResult]) -> Path:
    """One PNG of a scene with every planner's drive; returns its path. Raises ValueError if no planner drove it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    logs = {name: r.drive_log for name, r in results.items() if r.drive_log is not None}
    if not logs:
        raise ValueError(f"{scene_id}: no planner produced a drive log to plot")
    first = next(iter(logs.values()))
    paths = np.concatenate([lg.ego_poses[:, :2] for lg in logs.values()])
    lo, hi = paths.min(axis=0) - MARGIN_M, paths.max(axis=0) + MARGIN_M

    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    if first.map is not None:
        polys = [np.asarray(lane.polygon.exterior.coords)[:, :2] for lane in first.map.lanes]
        ax.add_collection(PolyCollection(polys, facecolors="0.88", edgecolors="0.7", linewidths=0.4, zorder=0))
        ax.add_collection(LineCollection([np.asarray(lane.centerline.coords)[:, :2] for lane in first.map.lanes],
                                         colors="0.75", linewidths=0.4, linestyles="dashed", zorder=1))
    if first.route is not None:
        route = np.asarray(first.route.coords)
        ax.plot(route[:, 0], route[:, 1], color="gold", lw=6, alpha=0.35, zorder=2, label="route")
    for agent in first.agents:  # logged agents (non-reactive: the same for every planner)
        valid = agent.valid
        if valid.any():
            ax.plot(agent.poses[valid, 0], agent.poses[valid, 1], color="0.45", lw=0.6, alpha=0.6, zorder=3)
            box = box_corners(agent.poses[np.argmax(valid)], agent.length, agent.width)
            ax.fill(box[:, 0], box[:, 1], facecolor="0.35", edgecolor="k", lw=0.5, zorder=4)

    cmap = plt.get_cmap("viridis")
    for k, (name, result) in enumerate(results.items()):
        color = PLANNER_COLORS[k % len(PLANNER_COLORS)]
        drive_log = result.drive_log
        if drive_log is None:
            continue
        for pose, modes, scores in _mode_snapshots(result):
            order = np.argsort(scores)  # best modes drawn last, on top
            span = max(float(scores.max() - scores.min()), 1e-6)
            for m in order:
                traj = np.concatenate([pose[None, :2], modes[m, :, :2]])
                ax.plot(traj[:, 0], traj[:, 1], color=cmap((scores[m] - scores.min()) / span), lw=0.8, alpha=0.8,
                        zorder=5)
        poses = drive_log.ego_poses
        pdms = result.means["pdms"] if result.steps else float("nan")
        ax.plot(poses[:, 0], poses[:, 1], color=color, lw=2.0, zorder=6, label=f"{name} (PDMS {pdms:.2f})")
        start = box_corners(poses[0], 4.5, 1.9)
        ax.fill(start[:, 0], start[:, 1], facecolor="none", edgecolor=color, lw=1.2, zorder=7)
        if drive_log.collision_time is not None:
            i = int(np.searchsorted(drive_log.times, drive_log.collision_time))
            ax.plot(*poses[min(i, len(poses) - 1), :2], marker="x", color=color, ms=12, mew=3, zorder=8)
        if drive_log.off_road_time is not None:
            i = int(np.searchsorted(drive_log.times, drive_log.off_road_time))
            ax.plot(*poses[min(i, len(poses) - 1), :2], marker="o", mfc="none", color=color, ms=12, mew=2, zorder=8)
    if any(_mode_snapshots(r) for r in results.values()):
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
        fig.colorbar(sm, ax=ax, shrink=0.6, label="candidate mode score (normalised per step)")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(f"{scene_id}: driven paths (x collision, o off-road)")
    ax.legend(loc="upper left", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def scene_plotter(out_dir: str | os.PathLike):  # noqa: ANN201 - an evaluate.SceneHook
    """An ``on_scene`` hook for ``run_evaluation`` that draws each scene to ``out_dir/plots/<scene>.png``."""

    def plot(scene_id: str, results: Mapping[str, SceneResult]) -> None:
        save_scene_plot(Path(out_dir) / "plots" / f"{scene_id}.png", scene_id, results)

    return plot
