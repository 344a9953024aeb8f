"""Simulator tests: ``diffusiondrive_ros.sim`` is imported before any test module here loads torch or MetaDrive.

Importing the package sets OMP_WAIT_POLICY, which must be in the environment before the first OpenMP runtime (torch's
or pygame's, which MetaDrive loads) starts; see diffusiondrive_ros/sim/__init__.py. Tests marked ``sim`` need MetaDrive
and are skipped without it by test/conftest.py.
"""

import diffusiondrive_ros.sim  # noqa: F401
