"""A 3D LiDAR point cloud: rays cast into MetaDrive's physics world at several elevations, plus the ground plane.

MetaDrive's own LiDAR is a flat ring of normalised distances; the planner wants (N,3) points like a real spinning
LiDAR. Rays that point down end on the ground plane (z = 0) analytically; only rays whose azimuth can reach a traffic
participant (from the world snapshot's boxes) are cast in Bullet, which keeps the Python loop short.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..world import WorldState


@dataclass(frozen=True)
class RayLidarSpec:
    """Beam layout of the simulated LiDAR (defaults: a 16-channel unit on the roof)."""

    channels: int = 16
    min_elevation_deg: float = -25.0
    max_elevation_deg: float = 5.0
    horizontal_rays: int = 360
    range_m: float = 60.0
    mount_height_m: float = 1.9  # above the ground, at the ego centre

    def __post_init__(self) -> None:
        if self.channels < 1 or self.horizontal_rays < 1:
            raise ValueError(f"channels and horizontal_rays must be >= 1, got {self.channels}, {self.horizontal_rays}")
        if not self.range_m > 0 or not self.mount_height_m > 0:
            raise ValueError(f"range_m and mount_height_m must be positive, got {self.range_m}, {self.mount_height_m}")
        if self.min_elevation_deg > self.max_elevation_deg:
            raise ValueError("min_elevation_deg must be <= max_elevation_deg")

    def elevations(self) -> np.ndarray:
        return np.deg2rad(np.linspace(self.min_elevation_deg, self.max_elevation_deg, self.channels))

    def azimuths(self) -> np.ndarray:
        return np.arange(self.horizontal_rays) * (2.0 * np.pi / self.horizontal_rays)

    def directions(self) -> np.ndarray:
        """(channels * horizontal_rays, 3) unit ray directions in the ego frame, channel-major."""
        el = self.elevations()[:, None]
        az = self.azimuths()[None, :]
        dirs = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1)
        return dirs.reshape(-1, 3)


def ray_lengths_to_ground(directions: np.ndarray, spec: RayLidarSpec) -> np.ndarray:
    """Length of each ray until it hits z = 0 (inf for rays at or above the horizon)."""
    dz = directions[:, 2]
    with np.errstate(divide="ignore"):
        return np.where(dz < -1e-9, spec.mount_height_m / -dz, np.inf)


def rays_near_agents(world: WorldState, spec: RayLidarSpec, margin_m: float = 0.5) -> np.ndarray:
    """(horizontal_rays,) bool: azimuth bins (ego frame) whose rays may hit a traffic participant within range."""
    hit = np.zeros(spec.horizontal_rays, dtype=bool)
    if world.num_agents == 0:
        return hit
    ex, ey, eh = world.ego_pose
    rel = world.agent_poses[:, :2] - (ex, ey)
    dist = np.hypot(rel[:, 0], rel[:, 1])
    radius = 0.5 * np.hypot(world.agent_sizes[:, 0], world.agent_sizes[:, 1]) + margin_m
    near = dist - radius < spec.range_m
    step = 2.0 * np.pi / spec.horizontal_rays
    for d, r, (rx, ry) in zip(dist[near], radius[near], rel[near]):
        bearing = np.arctan2(ry, rx) - eh
        half = np.pi if d <= r else np.arcsin(r / d)
        lo = int(np.floor((bearing - half) / step))
        hi = int(np.ceil((bearing + half) / step))
        hit[np.arange(lo, hi + 1) % spec.horizontal_rays] = True
    return hit


def cast_lidar(env, world: WorldState, spec: RayLidarSpec | None = None) -> np.ndarray:
    """(N,3) float32 points in the ego frame (x forward, y left, z up, z = 0 on the ground)."""
    spec = spec or RayLidarSpec()
    from metadrive.constants import CollisionGroup
    from panda3d.core import Vec3

    dirs = spec.directions()
    ground_len = ray_lengths_to_ground(dirs, spec)
    length = np.minimum(ground_len, spec.range_m)
    hit_len = np.full(len(dirs), np.inf)

    candidates = np.tile(rays_near_agents(world, spec), spec.channels)
    if candidates.any():
        world_dynamic = env.engine.physics_world.dynamic_world
        mask = CollisionGroup.Vehicle | CollisionGroup.TrafficObject | CollisionGroup.TrafficParticipants
        ego_node = env.agent.body
        ex, ey, eh = world.ego_pose
        c, s = np.cos(eh), np.sin(eh)
        idx = np.flatnonzero(candidates)
        d = dirs[idx]
        world_dirs = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1], d[:, 2]], -1)
        ends = world_dirs * length[idx, None]
        origin = Vec3(float(ex), float(ey), float(spec.mount_height_m))
        for i, end in zip(idx, ends):
            target = Vec3(float(ex + end[0]), float(ey + end[1]), float(spec.mount_height_m + end[2]))
            result = world_dynamic.rayTestClosest(origin, target, mask)
            if not result.hasHit():
                continue
            if result.getNode() == ego_node:
                result = _first_hit_not(world_dynamic.rayTestAll(origin, target, mask), ego_node)
                if result is None:
                    continue
            hit_len[i] = result.getHitFraction() * length[i]
    final = np.minimum(hit_len, np.where(ground_len <= spec.range_m, ground_len, np.inf))
    keep = np.isfinite(final)
    points = dirs[keep] * final[keep, None]
    points[:, 2] += spec.mount_height_m
    points[:, 2] = np.maximum(points[:, 2], 0.0)
    return points.astype(np.float32)


def _first_hit_not(results, node):
    hits = sorted(results.getHits(), key=lambda h: h.getHitFraction())
    return next((h for h in hits if h.getNode() != node), None)
