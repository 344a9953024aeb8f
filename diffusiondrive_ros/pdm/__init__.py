"""NAVSIM PDM score on shapely: scene types, LQR tracker, sub-metrics, PDM-Closed reference planner, scoring.

Pure numpy + shapely (no simulator import): the MetaDrive adapter builds :class:`ScoringScene` objects and drives
the simulated ego with :class:`LQRTracker`.
"""

from .constants import DT, NUM_STATES
from .pdm_closed import PDMClosedParams, PDMClosedResult, pdm_closed, pdm_closed_plan, reference_progress
from .scene import AgentTrack, EgoState, Lane, MapGeometry, ScoringScene, build_map, make_lane
from .scene_io import SceneFormatError, load_scene, save_scene
from .score import PDMResult, PDMTable, format_pdm_table, pdm_score, print_pdm_table, score_scenes, score_trajectory
from .tracker import Control, LQRTracker, TrackedTrajectory, TrackerParams, propagate, simulate
from .trajectory import interpolate_trajectory

__all__ = [
    "DT",
    "NUM_STATES",
    "AgentTrack",
    "Control",
    "EgoState",
    "LQRTracker",
    "Lane",
    "MapGeometry",
    "PDMClosedParams",
    "PDMClosedResult",
    "PDMResult",
    "PDMTable",
    "SceneFormatError",
    "ScoringScene",
    "TrackedTrajectory",
    "TrackerParams",
    "build_map",
    "format_pdm_table",
    "interpolate_trajectory",
    "load_scene",
    "make_lane",
    "pdm_closed",
    "pdm_closed_plan",
    "pdm_score",
    "print_pdm_table",
    "propagate",
    "reference_progress",
    "save_scene",
    "score_scenes",
    "score_trajectory",
    "simulate",
]
