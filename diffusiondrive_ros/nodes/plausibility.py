"""Physical plausibility bounds on the planner node's inputs. Pure Python and numpy (no ROS).

Finite is not enough: ``vx = 1e39`` passes a float64 finiteness check and overflows the model's float32 status
vector, ``vx = 1e6`` m/s or a cloud of points at 3e38 m would be planned as if real, and two extreme velocities in a
row used to turn the acceleration estimate into NaN. Values outside these bounds are rejected (odometry) or dropped
(single LiDAR points) and counted; the bounds are node parameters (``max_speed_mps``, ``max_yaw_rate_radps``,
``max_accel_mps2``, ``max_point_range_m``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .sync import RejectedInput


@dataclass(frozen=True)
class Bounds:
    max_speed_mps: float = math.inf
    max_yaw_rate_radps: float = math.inf
    max_point_range_m: float = math.inf


def check_twist(vx: float, vy: float, yaw_rate: float, bounds: Bounds) -> None:
    """Raise :class:`RejectedInput` (``non_finite``, ``implausible_speed``, ``implausible_yaw_rate``) for odometry
    the planner must not see."""
    if not (math.isfinite(vx) and math.isfinite(vy) and math.isfinite(yaw_rate)):
        raise RejectedInput("non_finite", f"odometry velocity ({vx}, {vy}) / yaw rate {yaw_rate} is not finite")
    speed = math.hypot(vx, vy)
    if speed > bounds.max_speed_mps:
        raise RejectedInput("implausible_speed", f"speed {speed:.6g} m/s > max_speed_mps {bounds.max_speed_mps:g}")
    if abs(yaw_rate) > bounds.max_yaw_rate_radps:
        raise RejectedInput("implausible_yaw_rate", f"yaw rate {yaw_rate:.6g} rad/s > max_yaw_rate_radps "
                                                    f"{bounds.max_yaw_rate_radps:g}")


@dataclass(frozen=True)
class FilteredPoints:
    points: np.ndarray  # (N, 3) float32, every coordinate finite and within the range
    non_finite: int  # points dropped for a NaN or infinite coordinate
    out_of_range: int  # finite points dropped for a coordinate beyond the range


def filter_points(xyz: np.ndarray, max_range_m: float = math.inf) -> FilteredPoints:
    """Drop points with a non-finite coordinate or one whose magnitude exceeds ``max_range_m`` (sensor frame).

    The common case (every point fine) costs two reductions and no copy: NaN and inf fail the min/max comparison.
    """
    if xyz.size == 0 or (xyz.min() >= -max_range_m and xyz.max() <= max_range_m):
        return FilteredPoints(xyz, 0, 0)
    finite = np.isfinite(xyz).all(axis=1)
    with np.errstate(invalid="ignore"):
        inside = (np.abs(xyz) <= max_range_m).all(axis=1)
    kept = xyz[inside]  # inside implies finite
    non_finite = int(np.count_nonzero(~finite))
    return FilteredPoints(kept, non_finite, int(xyz.shape[0] - kept.shape[0] - non_finite))
