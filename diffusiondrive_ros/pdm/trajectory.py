"""Planned trajectory (8 ego-frame poses at 0.5 s) -> world-frame reference at the simulation step DT."""

from __future__ import annotations

import numpy as np

from ..contract import NUM_POSES, POSE_DIM, POSE_INTERVAL_S
from ..geometry import ego_to_world, world_to_ego, wrap_angle
from .constants import DT, NUM_STATES, STEPS_PER_POSE


def validate_plan(trajectory_ego: np.ndarray) -> np.ndarray:
    """Return the plan as float64 (NUM_POSES, 3), raising ValueError for a wrong shape or non-finite values."""
    traj = np.asarray(trajectory_ego, dtype=np.float64)
    if traj.shape != (NUM_POSES, POSE_DIM):
        raise ValueError(f"trajectory must be ({NUM_POSES}, {POSE_DIM}) ego-frame poses, got shape {traj.shape}")
    if not np.isfinite(traj).all():
        raise ValueError("trajectory contains NaN or infinite values")
    return traj


def interpolate_trajectory(trajectory_ego: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """World-frame reference poses (NUM_STATES, 3) at DT from the planner's (NUM_POSES, 3) ego-frame poses.

    The current pose is prepended at t=0; x, y and the unwrapped heading are interpolated linearly in time, as
    NAVSIM does before handing the plan to its tracker.
    """
    traj = validate_plan(trajectory_ego)
    ego_pose = np.asarray(ego_pose, dtype=np.float64)
    if ego_pose.shape != (3,):
        raise ValueError(f"ego_pose must be (3,) x, y, heading; got shape {ego_pose.shape}")
    knots = np.vstack([np.zeros((1, POSE_DIM)), traj])
    knots[:, 2] = np.unwrap(knots[:, 2])
    knot_times = np.arange(NUM_POSES + 1) * POSE_INTERVAL_S
    times = np.arange(NUM_STATES) * DT
    dense = np.stack([np.interp(times, knot_times, knots[:, i]) for i in range(POSE_DIM)], -1)
    world = ego_to_world(dense, ego_pose)
    world[:, 2] = wrap_angle(world[:, 2])
    return world


def sample_plan(poses_world: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """Inverse direction: (NUM_STATES, 3) world poses at DT -> (NUM_POSES, 3) ego-frame poses at 0.5 s."""
    poses_world = np.asarray(poses_world, dtype=np.float64)
    if poses_world.shape != (NUM_STATES, 3):
        raise ValueError(f"expected ({NUM_STATES}, 3) world poses, got {poses_world.shape}")
    return world_to_ego(poses_world[STEPS_PER_POSE::STEPS_PER_POSE], ego_pose)
