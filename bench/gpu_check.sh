#!/usr/bin/env bash
# GPU check of the navsim planner (see bench/gpu_check.py). Runs from a plain checkout with the machine's python3,
# installs nothing, and is killed at 470 s so it always ends inside an 8-minute slot; extra args go to the script.
# Results: stdout, and $OUT/gpu_check.json when OUT is set (the device tool's output folder).
set -u
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
timeout -k 10 470 "$PY" bench/gpu_check.py --budget-s 420 "$@"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: killed at the 470 s limit" >&2
exit $rc
