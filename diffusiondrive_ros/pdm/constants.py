"""Constants of the PDM score (NAVSIM v1 definition) and of the closed-loop simulation step.

One source of truth for every threshold the scorer, the tracker and the reference planner share.
"""

from __future__ import annotations

from ..contract import HORIZON_S, NUM_POSES, POSE_INTERVAL_S

DT = 0.1  # simulation / scoring step [s]
STEPS_PER_POSE = int(round(POSE_INTERVAL_S / DT))  # 5 sim steps between two planned poses
NUM_STEPS = int(round(HORIZON_S / DT))  # 40 steps after t0
NUM_STATES = NUM_STEPS + 1  # 41 states, t0 included
assert STEPS_PER_POSE * NUM_POSES == NUM_STEPS

# Sub-score weights of PDMS = NC * DAC * (5 EP + 5 TTC + 2 C) / 12.
WEIGHT_EP = 5.0
WEIGHT_TTC = 5.0
WEIGHT_COMFORT = 2.0

# No at-fault collision.
STOPPED_SPEED_THRESHOLD = 5e-2  # [m/s] ego / agent counted as stopped in collision classification
BEHIND_ANGLE_DEG = 150.0  # agent is "behind" when the bearing to it is more than this from the ego heading
AHEAD_ANGLE_DEG = 30.0  # agent is "ahead" when the bearing to it is within this of the ego heading
NC_STATIC_SCORE = 0.5  # at-fault collision with a static object
NC_AGENT_SCORE = 0.0  # at-fault collision with a vehicle, pedestrian or cyclist
AGENT_KINDS = ("vehicle", "pedestrian", "cyclist")
STATIC_KIND = "static"

# Time to collision.
TTC_PROJECTION_STEPS = (0, 3, 6, 9)  # ego footprint projected 0, 0.3, 0.6, 0.9 s ahead at constant velocity
TTC_MIN_EGO_SPEED = 5e-3  # [m/s] TTC skipped below this ego speed

# Ego progress.
PROGRESS_DISTANCE_THRESHOLD = 5.0  # [m] below this best progress, EP = 1

# Comfort limits.
MAX_LON_ACCEL = 2.40  # [m/s^2]
MIN_LON_ACCEL = -4.05
MAX_ABS_LAT_ACCEL = 4.89
MAX_ABS_JERK = 8.37  # [m/s^3], magnitude of the 2-D jerk
MAX_ABS_LON_JERK = 4.13
MAX_ABS_YAW_ACCEL = 1.93  # [rad/s^2]
MAX_ABS_YAW_RATE = 0.95  # [rad/s]
