"""MetaDrive simulation: scenes, sensors, expert data, closed loop, PDM score and evaluation.

MetaDrive imports pygame, whose wheel brings its own OpenMP runtime. When that one is loaded before torch's, the
spinning workers of the two runtimes fight over the cores and a torch planner runs ~100x slower (2.6 s instead of
15-25 ms per plan on 2 cores). Passive waiting removes the contention; it must be in the environment before either
runtime is loaded, hence here, on import of the simulation package.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
