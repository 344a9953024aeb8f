"""Evaluation tests (closed loop in MetaDrive): ``diffusiondrive_ros.sim`` is imported before the test modules here.

Importing the package sets OMP_WAIT_POLICY, which must be in the environment before the first OpenMP runtime (torch's
or pygame's, which MetaDrive loads) starts; see diffusiondrive_ros/sim/__init__.py. The tests here are marked ``sim``:
they need MetaDrive and are skipped without it by test/conftest.py.
"""

import diffusiondrive_ros.sim  # noqa: F401
